import { describe, expect, test } from "vitest";
import type { AuditEntry, AuditFilter } from "./bindings";
import { buildFilter, defaultFilterState, matchesFilter } from "./audit-filter";

const now = new Date("2026-11-22T12:00:00Z");
const entry = (over: Partial<AuditEntry> = {}): AuditEntry => ({
  timestamp: "2026-11-22T11:59:00Z",
  request_id: "req_1",
  model: "Qwen2.5-0.5B",
  backend_type: "local",
  endpoint: "/v1/chat/completions",
  duration_ms: 100,
  status: "success",
  prompt_tokens: 1,
  completion_tokens: 2,
  total_tokens: 3,
  error_type: null,
  error_message: null,
  finish_reason: "stop",
  tool_calls: 0,
  ...over,
});

describe("buildFilter", () => {
  test("presets anchor a start time at now; empty fields match everything", () => {
    const built = buildFilter({ ...defaultFilterState(), preset: "1h" }, now);
    expect(built).toEqual({
      ok: true,
      filter: { model: null, model_contains: null, backend_type: null, status: null, endpoint: null, start_time: "2026-11-22T11:00:00.000Z", end_time: null },
    });
    const all = buildFilter({ ...defaultFilterState(), preset: "all" }, now);
    expect(all.ok && all.filter.start_time).toBe(null);
  });

  test("model text, backend and status become store fields", () => {
    const built = buildFilter({ ...defaultFilterState(), model: "  qwen ", backend: "openai", status: "timeout" }, now);
    expect(built.ok && built.filter).toMatchObject({ model_contains: "qwen", backend_type: "openai", status: "timeout" });
  });

  test("a custom range must end after it starts", () => {
    const bad = buildFilter({ ...defaultFilterState(), preset: "custom", from: "2026-11-22T10:00", to: "2026-11-22T09:00" }, now);
    expect(bad).toEqual({ ok: false, message: "The range must end after it starts." });
    const open = buildFilter({ ...defaultFilterState(), preset: "custom", from: "2026-11-22T10:00", to: "" }, now);
    expect(open.ok && open.filter.end_time).toBe(null);
    expect(open.ok && open.filter.start_time).toBe(new Date("2026-11-22T10:00").toISOString());
  });
});

describe("matchesFilter mirrors the store", () => {
  const f = (over: Partial<AuditFilter> = {}): AuditFilter => {
    const built = buildFilter({ ...defaultFilterState(), preset: "all" }, now);
    if (!built.ok) throw new Error(built.message);
    return { ...built.filter, ...over };
  };
  test("substring model match is case-insensitive; exact model is not", () => {
    expect(matchesFilter(entry(), f({ model_contains: "QWEN" }))).toBe(true);
    expect(matchesFilter(entry(), f({ model_contains: "llama" }))).toBe(false);
    expect(matchesFilter(entry(), f({ model: "qwen2.5-0.5b" }))).toBe(false);
  });
  test("backend, status, endpoint", () => {
    expect(matchesFilter(entry(), f({ backend_type: "openai" }))).toBe(false);
    expect(matchesFilter(entry({ status: "error" }), f({ status: "error" }))).toBe(true);
    expect(matchesFilter(entry(), f({ endpoint: "/v1/embeddings" }))).toBe(false);
  });
  test("finish reason: exact, and rows from before finish reasons were kept match only no filter", () => {
    expect(matchesFilter(entry({ finish_reason: "tool_calls", tool_calls: 2 }), f({ finish_reason: "tool_calls" }))).toBe(true);
    expect(matchesFilter(entry(), f({ finish_reason: "length" }))).toBe(false);
    expect(matchesFilter(entry({ finish_reason: null }), f({ finish_reason: "stop" }))).toBe(false);
    expect(matchesFilter(entry({ finish_reason: null }), f())).toBe(true);
  });
  test("start is inclusive, end exclusive", () => {
    const range = f({ start_time: "2026-11-22T11:59:00Z", end_time: "2026-11-22T12:00:00Z" });
    expect(matchesFilter(entry(), range)).toBe(true);
    expect(matchesFilter(entry({ timestamp: "2026-11-22T12:00:00Z" }), range)).toBe(false);
    expect(matchesFilter(entry({ timestamp: "2026-11-22T11:58:59Z" }), range)).toBe(false);
  });
});
