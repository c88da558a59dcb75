// Shapes the stats' time series for the charts: the store omits empty buckets, the charts show
// them as zero so time runs evenly along the x axis.
import type { AuditStats } from "./bindings";

export interface Point {
  start: number;
  requests: number;
  errors: number;
  avgMs: number | null;
}

/** At most this many bars; longer spans are drawn from their last buckets. */
export const MAX_POINTS = 240;

/** Continuous buckets from the first to the last (empty ones zero), oldest first. */
export function fillSeries(stats: AuditStats): Point[] {
  if (stats.series.length === 0 || stats.bucket_seconds <= 0) return [];
  const step = stats.bucket_seconds * 1000;
  const byStart = new Map(stats.series.map((b) => [Date.parse(b.start), b]));
  const first = Date.parse(stats.series[0].start);
  const last = Date.parse(stats.series[stats.series.length - 1].start);
  const count = Math.min(MAX_POINTS, Math.floor((last - first) / step) + 1);
  const points: Point[] = [];
  for (let i = count - 1; i >= 0; i--) {
    const start = last - i * step;
    const b = byStart.get(start);
    points.push({ start, requests: b?.requests ?? 0, errors: b?.errors ?? 0, avgMs: b && b.requests > 0 ? b.avg_duration_ms : null });
  }
  return points;
}

/** A round upper bound for an axis: 1, 2, 5 × 10^n at or above `max`. */
export function niceMax(max: number): number {
  if (max <= 0) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(max)));
  for (const m of [1, 2, 5, 10]) if (m * exp >= max) return m * exp;
  return 10 * exp;
}
