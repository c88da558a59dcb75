// The settings window in Debian's Chromium against the built UI (served by `vite preview`), with
// the Tauri IPC replaced by mock-ipc.js. Run: `npm run e2e:browser` (after `vite build`).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { calls, openWindow } from "./harness.mjs";

describe("request timeouts", () => {
  test("slider and input follow each other; invalid values block Save; Save and Reset call the backend", async () => {
    const { page, errors } = await openWindow();
    await page.getByTestId("tab-timeouts").click();
    const input = page.getByTestId("timeout-chat_seconds-input");
    const slider = page.getByTestId("timeout-chat_seconds-slider");
    const readout = page.getByTestId("timeout-chat_seconds-readout");
    assert.equal(await input.inputValue(), "900");
    assert.equal(await readout.textContent(), "15 min");

    // Typing moves the slider.
    const sliderBefore = Number(await slider.inputValue());
    await input.fill("7200");
    assert.equal(await readout.textContent(), "2 h");
    assert.ok(Number(await slider.inputValue()) > sliderBefore, "slider moved right for a longer timeout");

    // Dragging the slider rewrites the input.
    await slider.focus();
    await slider.evaluate((el) => {
      el.value = "0";
      el.dispatchEvent(new Event("input", { bubbles: true }));
    });
    assert.equal(await input.inputValue(), "1");
    assert.equal(await readout.textContent(), "1 s");
    await slider.press("End");
    assert.equal(await input.inputValue(), "86400");
    assert.equal(await readout.textContent(), "1 day");

    // Out of range: a message, Save disabled.
    await input.fill("0");
    assert.match(await readout.textContent(), /Between 1 s and 1 day/);
    assert.equal(await page.getByTestId("timeouts-save").isDisabled(), true);
    await input.fill("90000");
    assert.match(await readout.textContent(), /Between 1 s and 1 day/);
    assert.equal(await page.getByTestId("timeouts-save").isDisabled(), true);

    await input.fill("1800");
    await page.getByTestId("timeout-embeddings_seconds-input").fill("45");
    await page.getByTestId("timeouts-save").click();
    await page.getByTestId("timeouts-message").filter({ hasText: "Saved" }).waitFor();
    assert.deepEqual(await calls(page, "set_timeouts"), [{ timeouts: { chat_seconds: 1800, completions_seconds: 600, embeddings_seconds: 45 } }]);

    await page.getByTestId("timeouts-reset").click();
    await page.getByTestId("timeouts-message").filter({ hasText: "Defaults restored" }).waitFor();
    assert.equal(await input.inputValue(), "900");
    assert.equal(await page.getByTestId("timeout-embeddings_seconds-input").inputValue(), "120");
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe("model pool", () => {
  test("start-up models are saved in the pool settings; loading progress and failures show per model", async () => {
    const { page, errors } = await openWindow();
    await page.getByTestId("tab-pool").click();
    const box = page.getByTestId("pool-startup-tiny-qwen");
    assert.equal(await box.isChecked(), false);
    await box.check();
    await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "set_pool_settings"));
    const [saved] = await calls(page, "set_pool_settings");
    assert.deepEqual(saved.pool, { max_loaded_models: 4, memory_budget_gb: null, idle_ttl_seconds: null, preload: ["tiny-qwen"], drafts: {} });
    assert.equal(await box.isChecked(), true);
    assert.equal(await page.getByTestId("pool-startup-tiny-llama").isChecked(), false);

    // Loading progress from the engine shows in the model's row, then a failure.
    await page.evaluate(() => window.__emit("model-loading", { model: "tiny-llama", state: "loading", fraction: 0.4, message: null }));
    await page.getByTestId("pool-loading-tiny-llama").filter({ hasText: "Loading 40%" }).waitFor();
    await page.evaluate(() => window.__emit("model-loading", { model: "tiny-llama", state: "failed", fraction: null, message: "bad weights" }));
    await page.getByTestId("pool-row-tiny-llama").filter({ hasText: "Load failed" }).waitFor();
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a model that runs from a dequantized copy says so, and the tooltip says why", async () => {
    const { page, errors } = await openWindow();
    await page.getByTestId("tab-pool").click();
    const loaded = (id, quantization, dequantized_from_bits, memory_bytes) =>
      ({ id, model_type: "qwen2", dtype: "float32", quantization, dequantized_from_bits, memory_bytes, kv_cache_bytes: 0, pinned: false, idle_seconds: 3, requests_served: 1 });
    await page.evaluate((pool) => window.__emit("model-pool-changed", pool), {
      available: ["tiny-llama", "tiny-qwen"].map((id) => ({ id, path: `/models/${id}`, size_bytes: 2_400_000, loaded: true, model_type: "qwen2", supported: true })),
      // tiny-qwen: a 4-bit copy at 6.4x its files; tiny-llama kept packed (serve --keep-quantized).
      loaded: [loaded("tiny-qwen", "4-bit, group 64", 4, 15_360_000), loaded("tiny-llama", "4-bit, group 64", null, 2_400_000)],
      memory_in_use_bytes: 17_760_000,
      memory_budget_bytes: 18_000_000_000,
    });
    const note = page.getByTestId("pool-dequantized-tiny-qwen");
    await note.filter({ hasText: "dequantized from 4-bit (CPU)" }).waitFor();
    const title = await note.getAttribute("title");
    assert.match(title, /fast dense kernels/);
    assert.match(title, /~6\.4× the files' size/);
    assert.match(title, /--keep-quantized/);
    assert.equal(await page.getByTestId("pool-dequantized-tiny-llama").count(), 0);
    assert.match(await page.getByTestId("pool-row-tiny-llama").textContent(), /4-bit, group 64/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a model's draft is chosen from the other models and saved in the pool settings", async () => {
    const { page, errors } = await openWindow();
    await page.getByTestId("tab-pool").click();
    const select = page.getByTestId("pool-draft-tiny-qwen");
    assert.equal(await select.inputValue(), "");
    // "none" or another model, never the model itself.
    assert.deepEqual(await select.locator("option").allTextContents(), ["none", "tiny-llama"]);
    assert.deepEqual(await page.getByTestId("pool-draft-tiny-llama").locator("option").allTextContents(), ["none", "tiny-qwen"]);

    await select.selectOption("tiny-llama");
    await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "set_pool_settings"));
    const [saved] = await calls(page, "set_pool_settings");
    assert.deepEqual(saved.pool, { max_loaded_models: 4, memory_budget_gb: null, idle_ttl_seconds: null, preload: [], drafts: { "tiny-qwen": "tiny-llama" } });
    await page.waitForFunction(() => document.querySelector("[data-testid=pool-draft-tiny-qwen]").value === "tiny-llama");
    assert.equal(await page.getByTestId("pool-draft-tiny-llama").inputValue(), "");

    // Saving the limits keeps the draft; "none" removes it.
    await page.getByRole("button", { name: "Save limits" }).click();
    await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "set_pool_settings").length === 2);
    assert.deepEqual((await calls(page, "set_pool_settings")).at(-1).pool.drafts, { "tiny-qwen": "tiny-llama" });
    await select.selectOption("");
    await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "set_pool_settings").length === 3);
    assert.deepEqual((await calls(page, "set_pool_settings")).at(-1).pool.drafts, {});
    await page.waitForFunction(() => document.querySelector("[data-testid=pool-draft-tiny-qwen]").value === "");

    // A refusal (the draft is no longer registered) shows its message; the select goes back.
    await page.evaluate(() => (window.__MOCK__.cfg.models = ["tiny-qwen"]));
    await select.selectOption("tiny-llama");
    await page.getByRole("alert").filter({ hasText: "No model named “tiny-llama” is registered." }).waitFor();
    assert.equal(await select.inputValue(), "");
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe("audit logs", () => {
  test("empty state when nothing was recorded", async () => {
    const { page } = await openWindow({ entries: 0 });
    const empty = page.getByTestId("audit-empty");
    await empty.waitFor();
    assert.match(await empty.textContent(), /No requests in this time range yet/);
    assert.equal(await page.getByTestId("stat-total").textContent(), "0");
    await page.close();
  });

  test("scrolling to the end loads the next cursor page", async () => {
    const { page } = await openWindow({ entries: 250 });
    const rows = page.getByTestId("audit-row");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 100);
    assert.equal(await page.getByTestId("stat-total").textContent(), "250");
    await page.getByTestId("audit-scroller").evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 200);
    await page.getByTestId("audit-scroller").evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 250);
    const cursors = (await calls(page, "audit_page")).map((a) => a.cursor);
    assert.deepEqual(cursors, [null, "100", "200"]);
    assert.equal(await rows.last().locator("td").nth(1).textContent(), "tiny-qwen");
    await page.getByText("End of log").waitFor();
    await page.close();
  });

  test("filters go to the store and narrow rows and stats", async () => {
    const { page } = await openWindow({ entries: 60 });
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 60);
    await page.getByTestId("filter-status").selectOption("error");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 10);
    const last = (await calls(page, "audit_page")).at(-1);
    assert.equal(last.filter.status, "error");
    assert.equal(last.cursor, null);
    assert.ok(last.filter.start_time, "the default 24 h range sets a start time");
    assert.deepEqual([...new Set(await page.locator("[data-testid=audit-row] .badge").allTextContents())], ["Error"]);
    assert.equal(await page.getByTestId("stat-total").textContent(), "10");
    assert.equal(await page.getByTestId("stat-errors").textContent(), "10");

    await page.getByTestId("filter-model").fill("QWEN");
    await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=audit-row] td:nth-child(2)")].every((td) => td.textContent === "tiny-qwen"));
    assert.equal((await calls(page, "audit_page")).at(-1).filter.model_contains, "QWEN");

    await page.getByTestId("filter-status").selectOption("cancelled");
    await page.getByTestId("audit-empty").filter({ hasText: "No requests match these filters" }).waitFor();

    await page.getByTestId("filter-time").selectOption("custom");
    await page.getByTestId("filter-from").fill("2026-01-02T00:00");
    await page.getByTestId("filter-to").fill("2026-01-01T00:00");
    await page.getByRole("button", { name: "Apply range" }).click();
    await page.getByRole("alert").filter({ hasText: "must end after it starts" }).waitFor();
    await page.close();
  });

  test("live rows are prepended when they match the filter, keeping the scroll position", async () => {
    const { page } = await openWindow({ entries: 120 });
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 100);
    const scroller = page.getByTestId("audit-scroller");
    await scroller.evaluate((el) => (el.scrollTop = 300));
    const firstVisibleBefore = await page.evaluate(() => document.elementFromPoint(600, document.querySelector("[data-testid=audit-scroller]").getBoundingClientRect().top + 120)?.closest("tr")?.dataset.index);

    await page.evaluate(() => {
      const e = window.__MOCK__.entry(999_001, Date.now());
      e.model = "live-model";
      e.total_tokens = 42;
      window.__emit("audit-entry-appended", e);
    });
    await page.locator("[data-testid=audit-row]").first().filter({ hasText: "live-model" }).waitFor();
    assert.equal(await page.getByTestId("audit-row").count(), 101);
    const shifted = await page.evaluate(() => document.elementFromPoint(600, document.querySelector("[data-testid=audit-scroller]").getBoundingClientRect().top + 120)?.closest("tr")?.dataset.index);
    assert.equal(Number(shifted), Number(firstVisibleBefore) + 1, "the same row stays under the pointer");

    // A filtered view ignores entries that do not match it.
    await page.getByTestId("filter-status").selectOption("error");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 20);
    await page.evaluate(() => {
      const ok = window.__MOCK__.entry(999_002, Date.now());
      ok.status = "success";
      ok.model = "live-success";
      window.__emit("audit-entry-appended", ok);
      const bad = window.__MOCK__.entry(999_003, Date.now());
      bad.status = "error";
      bad.model = "live-error";
      window.__emit("audit-entry-appended", bad);
    });
    await page.locator("[data-testid=audit-row]").first().filter({ hasText: "live-error" }).waitFor();
    assert.equal(await page.getByText("live-success").count(), 0);
    assert.equal(await page.getByTestId("live-indicator").textContent(), "Live");

    // A stats notice refreshes the totals.
    const before = (await calls(page, "audit_stats")).length;
    await page.evaluate(() => window.__emit("stats-changed", { new_entries: 2, lagged: false }));
    await page.waitForFunction((n) => window.__calls.filter((c) => c.cmd === "audit_stats").length > n, before);
    await page.close();
  });

  test("keyboard: arrows move between rows, Enter opens the detail, Escape closes it", async () => {
    const { page } = await openWindow({ entries: 12 });
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 12);
    await page.getByTestId("audit-row").first().focus();
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await page.getByTestId("audit-detail").waitFor();
    assert.equal(await page.getByTestId("detail-request-id").textContent(), "req_mock000004");
    assert.match(await page.getByTestId("detail-error").textContent(), /model_not_found\s+No such model/);
    assert.match(await page.getByTestId("detail-finish-reason").textContent(), /—/, "a failed request finished nothing");
    assert.equal(await page.getByTestId("detail-tool-calls").textContent(), "0");
    await page.keyboard.press("Escape");
    await page.getByTestId("audit-detail").waitFor({ state: "detached" });
    // A routed request served by its rule's fallback says so, in the row and the detail.
    const routed = page.getByTestId("audit-row").nth(3);
    assert.match(await routed.textContent(), /openai ↪/);
    await routed.click();
    assert.match(await page.getByTestId("detail-backend").textContent(), /openai \(openai\) — fallback/);
    // Why generation stopped and how many tools it called.
    await page.getByTestId("audit-row").nth(2).click();
    assert.equal(await page.getByTestId("detail-request-id").textContent(), "req_mock000002");
    assert.match(await page.getByTestId("detail-finish-reason").textContent(), /^\s*tool_calls \(stopped to call tools\)\s*$/);
    assert.equal(await page.getByTestId("detail-tool-calls").textContent(), "2");
    await page.getByTestId("audit-row").nth(7).click();
    assert.match(await page.getByTestId("detail-finish-reason").textContent(), /length \(cut off at the token limit\)/);
    await page.close();
  });

  test("the table and the row detail fit the window at its default size", async () => {
    // src-tauri/src/shell.rs opens the window at 1100×760.
    const viewport = { width: 1100, height: 760 };
    const { page, errors } = await openWindow({ entries: 12, models: ["mlx-community/Qwen2.5-Coder-32B-Instruct-4bit"] }, viewport);
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 12);
    await page.getByTestId("audit-row").nth(2).click();
    await page.getByTestId("audit-detail").waitFor();
    const overflow = await page.evaluate(() => {
      const wide = (el) => el.scrollWidth > el.clientWidth + 1;
      return {
        page: wide(document.documentElement),
        table: wide(document.querySelector("[data-testid=audit-scroller]")),
        detail: wide(document.querySelector("[data-testid=audit-detail]")),
      };
    });
    assert.deepEqual(overflow, { page: false, table: false, detail: false });
    // Every column header is shown whole.
    const clipped = await page.locator("[data-testid=audit-scroller] th").evaluateAll((ths) => ths.filter((th) => th.scrollWidth > th.clientWidth).map((th) => th.textContent));
    assert.deepEqual(clipped, []);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("export asks for a file in the save dialog, exports the filtered set and reports it", async () => {
    const { page } = await openWindow({ entries: 30 });
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 30);
    await page.getByTestId("filter-backend").selectOption("openai");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit-row]").length === 6);
    await page.getByTestId("export-csv").click();
    await page.getByTestId("export-status").filter({ hasText: "Exported 6 rows" }).waitFor();
    const [dialog] = await calls(page, "plugin:dialog|save");
    assert.match(dialog.options.defaultPath, /^mlx-manager-audit-\d{4}-\d{2}-\d{2}\.csv$/);
    const [exp] = await calls(page, "export_audit");
    assert.equal(exp.format, "csv");
    assert.equal(exp.filter.backend_type, "openai");
    assert.equal(exp.path, `/tmp/${dialog.options.defaultPath}`);

    // Cancelling the dialog exports nothing.
    await page.evaluate(() => (window.__MOCK_SAVE_PATH__ = null));
    await page.getByTestId("export-jsonl").click();
    await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "plugin:dialog|save").length === 2);
    assert.equal((await calls(page, "export_audit")).length, 1);
    await page.close();
  });
});

describe("providers and routing rules", () => {
  test("add, validate, edit, test and delete providers; keys only as a hint", async () => {
    const { page, errors } = await openWindow();
    await page.getByTestId("tab-providers").click();
    await page.getByTestId("providers-empty").waitFor();

    // A URL without a scheme is refused next to its field, and nothing is added.
    await page.getByTestId("provider-add").click();
    await page.getByTestId("provider-name").fill("vllm");
    await page.getByTestId("provider-url").fill("10.0.0.5:8000/v1");
    await page.getByTestId("provider-save").click();
    await page.getByTestId("provider-error").filter({ hasText: "invalid base URL" }).waitFor();
    assert.equal(await page.getByTestId("provider-url").getAttribute("aria-invalid"), "true");
    await page.getByTestId("provider-url").fill("http://10.0.0.5:8000/v1");
    await page.getByTestId("provider-save").click();
    await page.getByTestId("provider-row").first().waitFor();

    // A hosted provider needs its key; the key comes back only as a hint.
    await page.getByTestId("provider-add").click();
    await page.getByRole("button", { name: "OpenAI", exact: true }).click();
    assert.equal(await page.getByTestId("provider-url").inputValue(), "https://api.openai.com/v1");
    await page.getByTestId("provider-save").click();
    await page.getByTestId("provider-error").filter({ hasText: "needs an API key" }).waitFor();
    await page.getByTestId("provider-key-input").fill("sk-secret-value-1234");
    await page.getByTestId("provider-save").click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=provider-row]").length === 2);
    const keys = await page.getByTestId("provider-key").allTextContents();
    assert.deepEqual(keys, ["…1234", "—"]);
    assert.ok(!(await page.content()).includes("sk-secret-value"), "the key is not in the page");

    // Editing without typing a key keeps it (api_key null); extra headers are parsed.
    await page.getByTestId("provider-edit").first().click();
    assert.equal(await page.getByTestId("provider-key-input").inputValue(), "");
    await page.getByLabel("Extra headers").fill("OpenAI-Organization: org-7");
    await page.getByTestId("provider-save").click();
    await page.getByTestId("provider-form").waitFor({ state: "detached" });
    const saves = await calls(page, "save_provider");
    assert.deepEqual(saves.at(-1).originalName, "openai");
    assert.equal(saves.at(-1).input.api_key, null);
    assert.deepEqual(saves.at(-1).input.extra_headers, { "OpenAI-Organization": "org-7" });

    // Test shows latency or the upstream's error.
    await page.getByTestId("provider-test").nth(1).click();
    await page.getByTestId("provider-result").filter({ hasText: "Reachable: HTTP 200 in 42 ms" }).waitFor();

    await page.getByTestId("provider-delete").nth(1).click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=provider-row]").length === 1);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("rules: typed errors at the field, reorder by priority, test where a model goes", async () => {
    const { page, errors } = await openWindow();
    await page.evaluate(() => window.__MOCK__.routing.providers.push({ config: { name: "openai", kind: "openai", base_url: "https://api.openai.com/v1", extra_headers: {}, enabled: true, timeout_seconds: null }, key: "sk-x-9999" }));
    await page.getByTestId("tab-routing").click();
    await page.getByTestId("rules-empty").waitFor();

    await page.getByTestId("rule-add").click();
    await page.getByTestId("rule-pattern-input").fill("gpt-(");
    await page.getByTestId("rule-match").selectOption("regex");
    await page.getByTestId("rule-save").click();
    await page.getByTestId("rule-error").filter({ hasText: "invalid regex" }).waitFor();
    assert.equal(await page.getByTestId("rule-pattern-input").getAttribute("aria-invalid"), "true");
    await page.getByTestId("rule-pattern-input").fill("gpt-.*");
    await page.getByTestId("rule-backend").selectOption("openai");
    await page.getByTestId("rule-fallback").selectOption("local");
    await page.getByTestId("rule-save").click();
    await page.getByTestId("rule-row").first().waitFor();

    await page.getByTestId("rule-add").click();
    await page.getByTestId("rule-pattern-input").fill("gpt-4o");
    await page.getByTestId("rule-backend").selectOption("local");
    await page.getByTestId("rule-backend-model").fill("tiny-qwen");
    await page.getByTestId("rule-save").click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=rule-row]").length === 2);
    assert.deepEqual(await page.getByTestId("rule-pattern").allTextContents(), ["gpt-.*", "gpt-4o"]);

    // Same priority: the older rule matches first.
    await page.getByTestId("route-test-input").fill("gpt-4o");
    await page.getByTestId("route-test").click();
    await page.getByTestId("route-test-result").filter({ hasText: "Rule #1: openai serves it; fallback the local engine." }).waitFor();

    // Moving the second rule up rewrites priorities; the test now picks it.
    await page.getByTestId("rule-up").nth(1).click();
    await page.waitForFunction(() => document.querySelector("[data-testid=rule-pattern]").textContent === "gpt-4o");
    assert.deepEqual((await calls(page, "reorder_rules")).at(-1), { ids: [2, 1] });
    await page.getByTestId("route-test").click();
    await page.getByTestId("route-test-result").filter({ hasText: "Rule #2: the local engine serves it as “tiny-qwen”." }).waitFor();

    await page.getByTestId("route-test-input").fill("claude-3");
    await page.getByTestId("route-test").click();
    await page.getByTestId("route-test-result").filter({ hasText: "No rule matches" }).waitFor();

    // A provider still used by a rule cannot be deleted; the message says which rules.
    await page.getByTestId("tab-providers").click();
    await page.getByTestId("provider-delete").click();
    await page.getByTestId("provider-result").filter({ hasText: "used by routing rules [1]" }).waitFor();
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe("models", () => {
  test("search shows size, quantization and support; download with progress, pause, resume, completion", async () => {
    const { page, errors } = await openWindow();
    await page.getByTestId("tab-models").click();
    await page.getByTestId("installed-row").first().waitFor();

    await page.getByTestId("models-search-input").fill("mlx-community");
    await page.getByTestId("models-sort").selectOption("recent");
    await page.getByTestId("models-search").click();
    await page.getByTestId("model-result").first().waitFor();
    assert.deepEqual((await calls(page, "search_models")).at(-1), { text: "mlx-community", sort: "recent", limit: null });
    const names = await page.locator("[data-testid=model-result] .name").allTextContents();
    assert.deepEqual(names, ["mlx-community/Whisper-large-v3", "mlx-community/Qwen2.5-0.5B-Instruct-4bit", "mlx-community/Llama-3.2-1B-Instruct-8bit"]);
    assert.deepEqual(await page.getByTestId("model-result-size").allTextContents(), ["3.1 GB", "278 MB", "1.3 GB"]);
    assert.deepEqual(await page.getByTestId("model-result-quant").allTextContents(), ["not quantized", "4-bit, group 64", "8-bit, group 64"]);
    assert.equal(await page.getByTestId("model-result-unsupported").textContent(), "Not supported (whisper)");
    assert.equal(await page.getByTestId("model-result-supported").count(), 2);
    assert.equal(await page.getByTestId("model-result-installed").count(), 1);

    // Download: progress events move the bar and the line (bytes, rate, time left).
    await page.getByTestId("model-download").nth(1).click();
    const item = page.getByTestId("download");
    await item.waitFor();
    assert.deepEqual((await calls(page, "start_download")).at(-1), { repo: "mlx-community/Qwen2.5-0.5B-Instruct-4bit" });
    await page.evaluate(() => window.__MOCK__.library.progress("dl_000000000001", 139_000_000, "running"));
    await page.getByTestId("download-line").filter({ hasText: "139 MB of 278 MB · 10 MB/s · 14 s left" }).waitFor();
    assert.equal(await page.getByTestId("download-bar").evaluate((el) => el.value), 50);

    // Pause, then resume.
    await page.getByTestId("download-pause").click();
    await page.getByTestId("download-line").filter({ hasText: "139 MB of 278 MB · paused" }).waitFor();
    assert.deepEqual((await calls(page, "pause_download")).at(-1), { id: "dl_000000000001" });
    await page.getByTestId("download-resume").click();
    await page.locator("[data-testid=download][data-state=running]").waitFor();
    assert.deepEqual((await calls(page, "resume_download")).at(-1), { id: "dl_000000000001" });

    // Completion: the bar fills, the installed list is fetched again and shows the model.
    await page.evaluate(() => window.__MOCK__.library.progress("dl_000000000001", 278_000_000, "completed"));
    await page.getByTestId("download-line").filter({ hasText: "278 MB · done" }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=installed-row]").length === 2);
    await page.getByTestId("download-dismiss").click();
    await item.waitFor({ state: "detached" });
    assert.equal(await page.getByTestId("model-result-installed").count(), 2, "the finished model shows as installed");

    // A typed error comes back at the result's row.
    await page.getByTestId("model-download").click();
    await page.getByTestId("model-result-error").filter({ hasText: "not enough disk space: needs 3.1 GB, 1.0 GB free" }).waitFor();

    // A cancelled download leaves the list (searching again: the mock Hub's flags are fixed).
    await page.getByTestId("models-search").click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=model-download]").length === 2);
    await page.getByTestId("model-download").nth(1).click();
    await page.getByTestId("download-cancel").click();
    await item.waitFor({ state: "detached" });
    assert.equal((await calls(page, "cancel_download")).length, 2);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("delete asks first; a loaded model is unloaded and deleted only after the confirm", async () => {
    const { page, errors } = await openWindow();
    await page.evaluate(() => window.__MOCK__.library.installed.push({ repo: "mlx-community/Small-4bit", path: "/hf/models--mlx-community--Small-4bit", size_bytes: 300_000_000, incomplete_bytes: 20_000_000, complete: true, model_type: "qwen2", supported: true, loaded: false }));
    await page.getByTestId("tab-models").click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=installed-row]").length === 2);
    assert.deepEqual(await page.getByTestId("installed-size").allTextContents(), ["1.3 GB", "300 MB + 20 MB partial"]);

    // Keep: nothing is deleted.
    await page.getByTestId("installed-delete").nth(1).click();
    await page.getByTestId("installed-confirm").filter({ hasText: "free 320 MB" }).waitFor();
    await page.getByTestId("installed-cancel-delete").click();
    assert.equal((await calls(page, "delete_model")).length, 0);

    await page.getByTestId("installed-delete").nth(1).click();
    await page.getByTestId("installed-confirm-delete").click();
    await page.getByTestId("installed-message").filter({ hasText: "Deleted mlx-community/Small-4bit: 300 MB freed." }).waitFor();
    assert.deepEqual((await calls(page, "delete_model")).at(-1), { repo: "mlx-community/Small-4bit", force: false });
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=installed-row]").length === 1);

    // The loaded one says so, and its confirm forces the delete.
    await page.getByTestId("installed-delete").click();
    await page.getByTestId("installed-confirm").filter({ hasText: "It is loaded now" }).waitFor();
    assert.equal(await page.getByTestId("installed-confirm-delete").textContent(), "Unload and delete");
    await page.getByTestId("installed-confirm-delete").click();
    await page.getByTestId("installed-empty").waitFor();
    assert.deepEqual((await calls(page, "delete_model")).at(-1), { repo: "mlx-community/Llama-3.2-1B-Instruct-8bit", force: true });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
