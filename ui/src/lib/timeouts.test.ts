import { describe, expect, test } from "vitest";
import { MAX_SECONDS, SLIDER_MAX, parseSeconds, secondsToSlider, sliderToSeconds } from "./timeouts";

describe("timeout slider scale", () => {
  test("ends map to the allowed range", () => {
    expect(sliderToSeconds(0)).toBe(1);
    expect(sliderToSeconds(SLIDER_MAX)).toBe(MAX_SECONDS);
    expect(secondsToSlider(1)).toBe(0);
    expect(secondsToSlider(MAX_SECONDS)).toBe(SLIDER_MAX);
  });

  test("is monotonic and round-trips the defaults closely", () => {
    let last = 0;
    for (let p = 0; p <= SLIDER_MAX; p += 10) {
      const s = sliderToSeconds(p);
      expect(s).toBeGreaterThanOrEqual(last);
      last = s;
    }
    for (const s of [120, 600, 900]) {
      const back = sliderToSeconds(secondsToSlider(s));
      expect(Math.abs(back - s) / s).toBeLessThan(0.02);
    }
  });

  test("snaps to round values for the magnitude", () => {
    for (let p = 0; p <= SLIDER_MAX; p += 7) {
      const s = sliderToSeconds(p);
      if (s >= 7200 && s < MAX_SECONDS) expect(s % 300).toBe(0);
      else if (s >= 1200 && s < 7200) expect(s % 60).toBe(0);
    }
  });

  test("the minutes range gets most of the slider", () => {
    expect(secondsToSlider(60)).toBeLessThan(SLIDER_MAX / 2);
    expect(secondsToSlider(3600)).toBeGreaterThan(SLIDER_MAX / 2);
  });
});

describe("parseSeconds", () => {
  test("accepts whole seconds in range", () => {
    expect(parseSeconds("900")).toEqual({ ok: true, value: 900 });
    expect(parseSeconds(" 1 ")).toEqual({ ok: true, value: 1 });
    expect(parseSeconds(86400)).toEqual({ ok: true, value: 86400 });
  });

  test("rejects empty, fractional and out-of-range values with a reason", () => {
    expect(parseSeconds("")).toMatchObject({ ok: false, message: "Enter a number of seconds." });
    expect(parseSeconds("1.5")).toMatchObject({ ok: false, message: "Use a whole number of seconds." });
    expect(parseSeconds("abc")).toMatchObject({ ok: false });
    expect(parseSeconds("0")).toMatchObject({ ok: false, message: expect.stringContaining("1 day") });
    expect(parseSeconds("86401")).toMatchObject({ ok: false });
  });
});
