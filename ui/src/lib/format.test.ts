import { expect, test } from "vitest";
import { finishMeaning, formatBytes, formatCount, formatMs, formatSeconds } from "./format";

test("durations read like a person would say them", () => {
  expect(formatSeconds(45)).toBe("45 s");
  expect(formatSeconds(900)).toBe("15 min");
  expect(formatSeconds(5400)).toBe("1 h 30 min");
  expect(formatSeconds(86400)).toBe("1 day");
  expect(formatSeconds(90061)).toBe("1 day 1 h 1 min 1 s");
});

test("latencies keep sub-second precision", () => {
  expect(formatMs(850)).toBe("850 ms");
  expect(formatMs(1250)).toBe("1.25 s");
  expect(formatMs(12_340)).toBe("12.3 s");
  expect(formatMs(123_000)).toBe("2 min 3 s");
});

test("sizes and counts", () => {
  expect(formatBytes(512)).toBe("512 B");
  expect(formatBytes(2_400_000)).toBe("2 MB");
  expect(formatBytes(4_200_000_000)).toBe("4.2 GB");
  expect(formatCount(1234567)).toBe("1,234,567");
});

test("finish reasons mean the same in both APIs' spellings", () => {
  expect(finishMeaning("length")).toBe("cut off at the token limit");
  expect(finishMeaning("max_tokens")).toBe(finishMeaning("length"));
  expect(finishMeaning("tool_use")).toBe(finishMeaning("tool_calls"));
  expect(finishMeaning("end_turn")).toBe("finished its answer");
  expect(finishMeaning("something_new")).toBeNull();
  expect(finishMeaning("toString")).toBeNull();
});
