import { expect, test } from "vitest";
import type { AuditStats } from "./bindings";
import { MAX_POINTS, fillSeries, niceMax } from "./chart";

const stats = (series: AuditStats["series"], bucket_seconds = 60): AuditStats => ({
  total: 0, total_requests: 0, by_status: {}, by_backend: {}, by_model: {}, unique_models: 0, prompt_tokens: 0, completion_tokens: 0,
  latency_p50_ms: null, latency_p95_ms: null, bucket_seconds, series,
});

test("empty buckets between filled ones become zeros", () => {
  const points = fillSeries(stats([
    { start: "2026-11-22T10:00:00Z", requests: 3, errors: 1, avg_duration_ms: 120 },
    { start: "2026-11-22T10:03:00Z", requests: 1, errors: 0, avg_duration_ms: 80 },
  ]));
  expect(points.map((p) => p.requests)).toEqual([3, 0, 0, 1]);
  expect(points.map((p) => p.avgMs)).toEqual([120, null, null, 80]);
  expect(points[1].start - points[0].start).toBe(60_000);
});

test("long spans keep their newest buckets", () => {
  const points = fillSeries(stats([
    { start: "2026-11-01T00:00:00Z", requests: 1, errors: 0, avg_duration_ms: 1 },
    { start: "2026-11-22T00:00:00Z", requests: 2, errors: 0, avg_duration_ms: 1 },
  ]));
  expect(points).toHaveLength(MAX_POINTS);
  expect(points[points.length - 1].requests).toBe(2);
});

test("axis maxima are round", () => {
  expect(niceMax(0)).toBe(1);
  expect(niceMax(7)).toBe(10);
  expect(niceMax(130)).toBe(200);
  expect(niceMax(4200)).toBe(5000);
});
