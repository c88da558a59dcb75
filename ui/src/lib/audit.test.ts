// AuditLog against a mocked IPC (the official @tauri-apps/api/mocks): paging by cursor, live rows,
// stale responses and lag handling.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import type { AuditEntry, AuditFilter } from "./bindings";
import { AuditLog, PAGE_SIZE } from "./audit.svelte";

const entry = (i: number, over: Partial<AuditEntry> = {}): AuditEntry => ({
  timestamp: new Date(Date.now() - i * 1000).toISOString(),
  request_id: `req_${i}`,
  model: i % 2 ? "odd-model" : "even-model",
  backend_type: "local",
  endpoint: "/v1/chat/completions",
  duration_ms: 10,
  status: i % 5 === 0 ? "error" : "success",
  prompt_tokens: 1,
  completion_tokens: 1,
  total_tokens: 2,
  error_type: null,
  error_message: null,
  finish_reason: "stop",
  tool_calls: 0,
  ...over,
});

let store: AuditEntry[];
let pageCalls: { filter: AuditFilter; cursor: string | null }[];
let statsCalls: number;
let pageDelay: number;

beforeEach(() => {
  store = Array.from({ length: 250 }, (_, i) => entry(i));
  pageCalls = [];
  statsCalls = 0;
  pageDelay = 0;
  mockIPC(async (cmd, args) => {
    const a = args as { filter: AuditFilter; cursor: string | null; limit: number };
    const rows = () => store.filter((e) => (!a.filter.status || e.status === a.filter.status) && (!a.filter.model_contains || e.model.includes(a.filter.model_contains)));
    if (cmd === "audit_page") {
      pageCalls.push({ filter: a.filter, cursor: a.cursor });
      if (pageDelay) await new Promise((r) => setTimeout(r, pageDelay));
      const start = a.cursor ? Number(a.cursor) : 0;
      const all = rows();
      const entries = all.slice(start, start + a.limit);
      return { entries, next_cursor: start + entries.length < all.length ? String(start + entries.length) : null };
    }
    if (cmd === "audit_stats") {
      statsCalls += 1;
      return { total: rows().length, total_requests: rows().length, by_status: {}, by_backend: {}, by_model: {}, unique_models: 2, prompt_tokens: 0, completion_tokens: 0, latency_p50_ms: null, latency_p95_ms: null, bucket_seconds: 60, series: [] };
    }
    throw new Error(`unexpected ${cmd}`);
  });
});
afterEach(() => clearMocks());

describe("AuditLog", () => {
  test("pages through the store by cursor until the end", async () => {
    const log = new AuditLog();
    await log.reload();
    expect(log.rows).toHaveLength(PAGE_SIZE);
    expect(log.stats?.total).toBe(250);
    await log.loadMore();
    await log.loadMore();
    expect(log.rows).toHaveLength(250);
    expect(log.complete).toBe(true);
    await log.loadMore();
    expect(pageCalls.map((c) => c.cursor)).toEqual([null, "100", "200"]);
    expect(new Set(log.rows.map((r) => r.request_id)).size).toBe(250);
  });

  test("a concurrent loadMore does not ask for the same page twice", async () => {
    pageDelay = 20;
    const log = new AuditLog();
    await Promise.all([log.loadMore(), log.loadMore(), log.loadMore()]);
    expect(pageCalls).toHaveLength(1);
  });

  test("live entries matching the filter go on top once; others are ignored", async () => {
    const log = new AuditLog();
    log.filterState.status = "error";
    await log.apply();
    const rowsBefore = log.rows.length;
    log.receive(entry(-1, { request_id: "req_live_ok", status: "success" }));
    log.receive(entry(-2, { request_id: "req_live_err", status: "error" }));
    log.receive(entry(-2, { request_id: "req_live_err", status: "error" }));
    expect(log.rows).toHaveLength(rowsBefore + 1);
    expect(log.rows[0].request_id).toBe("req_live_err");
    expect(log.prepended).toBe(1);
  });

  test("an answer for an older filter is dropped", async () => {
    pageDelay = 30;
    const log = new AuditLog();
    const first = log.reload();
    log.filterState.model = "odd";
    await Promise.all([first, log.apply()]);
    expect(log.rows.every((r) => r.model === "odd-model")).toBe(true);
    expect(log.rows).toHaveLength(PAGE_SIZE);
  });

  test("an invalid custom range is reported and nothing is queried", async () => {
    const log = new AuditLog();
    Object.assign(log.filterState, { preset: "custom", from: "2026-01-02T00:00", to: "2026-01-01T00:00" });
    await log.apply();
    expect(log.filterError).toMatch(/end after it starts/);
    expect(pageCalls).toHaveLength(0);
  });

  test("stats notices are coalesced; a lag notice reloads the list", async () => {
    const log = new AuditLog();
    await log.reload();
    const before = statsCalls;
    log.changed(false);
    log.changed(false);
    log.changed(false);
    await new Promise((r) => setTimeout(r, 400));
    expect(statsCalls).toBe(before + 1);
    const pagesBefore = pageCalls.length;
    log.changed(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(pageCalls.length).toBe(pagesBefore + 1);
    expect(pageCalls[pageCalls.length - 1]?.cursor).toBe(null);
  });
});
