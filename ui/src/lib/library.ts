// What the Models section shows about downloads: progress, rate and time left, one line each.
import type { Download } from "./bindings";
import { formatBytes, formatSeconds } from "./format";

/** 0 … 100, for the progress bar (0 while the total is unknown). */
export function downloadPercent(d: Pick<Download, "bytes_done" | "bytes_total">): number {
  if (!(d.bytes_total > 0)) return 0;
  return Math.min(100, Math.max(0, (d.bytes_done / d.bytes_total) * 100));
}

/** `12 MB/s`; `—` when nothing flows. */
export function formatRate(bytesPerSecond: number | null): string {
  if (bytesPerSecond === null || !(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) return "—";
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** `3 min 20 s left`; `—` when unknown. */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return "—";
  return `${formatSeconds(Math.max(1, Math.ceil(seconds)))} left`;
}

/** The progress line: `1.2 GB of 4.3 GB · 12 MB/s · 4 min 18 s left` while running. */
export function progressLine(d: Download): string {
  const bytes = `${formatBytes(d.bytes_done)} of ${formatBytes(d.bytes_total)}`;
  switch (d.state) {
    case "running":
      return `${bytes} · ${formatRate(d.bytes_per_second)} · ${formatEta(d.eta_seconds)}`;
    case "queued":
      return `${bytes} · starting…`;
    case "paused":
      return `${bytes} · paused`;
    case "failed":
      return `${bytes} · failed: ${d.error ?? "unknown error"}`;
    case "completed":
      return `${formatBytes(d.bytes_total)} · done`;
    case "cancelled":
      return `${bytes} · cancelled`;
  }
}

/** `4-bit, group 64` or `not quantized`. */
export function quantLabel(q: string | null): string {
  return q ?? "not quantized";
}
