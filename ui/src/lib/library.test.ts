import { describe, expect, test } from "vitest";
import type { Download } from "./bindings";
import { downloadPercent, formatEta, formatRate, progressLine, quantLabel } from "./library";

const running: Download = {
  id: "dl_000000000001",
  repo: "mlx-community/Tiny-4bit",
  revision: "main",
  state: "running",
  bytes_done: 1_200_000_000,
  bytes_total: 4_300_000_000,
  bytes_per_second: 12_000_000,
  eta_seconds: 257.4,
  files_done: 2,
  files_total: 7,
  path: null,
  error: null,
};

describe("download progress", () => {
  test("percent is bounded and 0 while the total is unknown", () => {
    expect(downloadPercent({ bytes_done: 50, bytes_total: 200 })).toBe(25);
    expect(downloadPercent({ bytes_done: 5, bytes_total: 0 })).toBe(0);
    expect(downloadPercent({ bytes_done: 300, bytes_total: 200 })).toBe(100);
  });

  test("rate and time left", () => {
    expect(formatRate(12_000_000)).toBe("12 MB/s");
    expect(formatRate(0)).toBe("—");
    expect(formatRate(Number.NaN)).toBe("—");
    expect(formatEta(257.4)).toBe("4 min 18 s left");
    expect(formatEta(0.2)).toBe("1 s left");
    expect(formatEta(null)).toBe("—");
  });

  test("one line per state", () => {
    expect(progressLine(running)).toBe("1.2 GB of 4.3 GB · 12 MB/s · 4 min 18 s left");
    expect(progressLine({ ...running, state: "paused", bytes_per_second: 0, eta_seconds: null })).toBe("1.2 GB of 4.3 GB · paused");
    expect(progressLine({ ...running, state: "failed", error: "the Hub answered 503" })).toBe("1.2 GB of 4.3 GB · failed: the Hub answered 503");
    expect(progressLine({ ...running, state: "completed", bytes_done: 4_300_000_000 })).toBe("4.3 GB · done");
  });

  test("quantization label", () => {
    expect(quantLabel("4-bit, group 64")).toBe("4-bit, group 64");
    expect(quantLabel(null)).toBe("not quantized");
  });
});
