// Injected before the settings window's code in the Playwright tests: stands in for the Tauri IPC
// (window.__TAURI_INTERNALS__) with an in-page backend that answers the generated commands from
// `window.__MOCK__` data, records every call in `window.__calls`, and lets a test fire shell events
// with `window.__emit(name, payload)`. The real backend is covered by src-tauri's tests and the
// WebKit end-to-end test; this one is about the window's behaviour.
(() => {
  const cfg = Object.assign({ entries: 0, models: ["tiny-llama", "tiny-qwen"], os: "linux", loginRefused: false }, window.__MOCK_CONFIG__ || {});
  const backends = ["local", "local", "local", "openai", "anthropic"];
  const statuses = ["success", "success", "success", "success", "error", "timeout"];
  const openaiFinish = ["tool_calls", "length", "stop"];
  const anthropicFinish = ["tool_use", "max_tokens", "end_turn"];
  const now = Date.now();
  const entry = (i, at) => {
    const status = statuses[i % statuses.length];
    return {
      timestamp: new Date(at).toISOString(),
      request_id: `req_mock${String(i).padStart(6, "0")}`,
      model: cfg.models[i % cfg.models.length],
      backend_type: backends[i % backends.length],
      endpoint: i % 3 === 0 ? "/v1/messages" : "/v1/chat/completions",
      duration_ms: 40 + ((i * 37) % 900),
      status,
      prompt_tokens: 12 + (i % 30),
      completion_tokens: status === "success" ? 20 + (i % 50) : 0,
      total_tokens: 0,
      error_type: status === "success" ? null : status === "timeout" ? "timeout" : "model_not_found",
      error_message: status === "success" ? null : status === "timeout" ? "Request exceeded 900 s" : "No such model",
      backend_name: backends[i % backends.length] === "local" ? null : backends[i % backends.length],
      fallback: i % 10 === 3,
      // Row 2 called two tools; row 7 ran out of tokens; failed rows finished nothing. Each in its
      // API's spelling (/v1/messages: Anthropic's).
      finish_reason: status !== "success" ? null : (i % 3 === 0 ? anthropicFinish : openaiFinish)[i % 10 === 2 ? 0 : i % 10 === 7 ? 1 : 2],
      tool_calls: status === "success" && i % 10 === 2 ? 2 : 0,
    };
  };
  // Newest first, one every 30 s.
  const entries = Array.from({ length: cfg.entries }, (_, i) => entry(i, now - i * 30_000));
  for (const e of entries) e.total_tokens = e.prompt_tokens + e.completion_tokens;

  const state = {
    status: { running: true, url: "http://127.0.0.1:10242", error: null },
    settings: {
      server: { host: "127.0.0.1", port: 10242, api_key: null, allowed_origins: [], metrics: false },
      timeouts: { chat_seconds: 900, completions_seconds: 600, embeddings_seconds: 120 },
      pool: { max_loaded_models: 4, memory_budget_gb: null, idle_ttl_seconds: null, preload: [], drafts: {} },
      desktop: { launch_at_login: false, show_dock_icon: false },
    },
    pool: {
      available: cfg.models.map((id) => ({ id, path: `/models/${id}`, size_bytes: 2_400_000, loaded: false, model_type: "qwen2", supported: true })),
      loaded: [],
      memory_in_use_bytes: 0,
      memory_budget_bytes: 18_000_000_000,
    },
  };

  const matches = (e, f) =>
    (!f.model || e.model === f.model) &&
    (!f.model_contains || e.model.toLowerCase().includes(f.model_contains.toLowerCase())) &&
    (!f.backend_type || e.backend_type === f.backend_type) &&
    (!f.status || e.status === f.status) &&
    (!f.endpoint || e.endpoint === f.endpoint) &&
    (!f.finish_reason || e.finish_reason === f.finish_reason) &&
    (!f.start_time || Date.parse(e.timestamp) >= Date.parse(f.start_time)) &&
    (!f.end_time || Date.parse(e.timestamp) < Date.parse(f.end_time));

  const fail = (error) => Promise.reject(error);

  // Providers and routing rules, validated like the Rust catalog (typed errors with the field).
  const routing = { providers: [], rules: [], nextId: 1 };
  const invalid = (field, message) => fail({ kind: "invalid", field, message });
  const view = (p) => ({ ...p.config, api_key_hint: p.key ? `…${p.key.slice(-4)}` : null, key_storage: "encrypted_file" });
  const providerList = () => routing.providers.map(view).sort((a, b) => a.name.localeCompare(b.name));
  const ruleList = () => [...routing.rules].sort((a, b) => b.priority - a.priority || a.id - b.id);
  const known = (b) => b === "local" || routing.providers.some((p) => p.config.name === b);
  const checkRule = (r) => {
    if (r.pattern === "") return invalid("pattern", "pattern: must not be empty");
    if (r.match_type === "regex") {
      try {
        new RegExp(r.pattern);
      } catch (e) {
        return invalid("pattern", `invalid regex \`${r.pattern}\`: ${e.message}`);
      }
    }
    if (!known(r.backend)) return invalid("backend", `unknown backend \`${r.backend}\` in \`backend\``);
    if (r.fallback && !known(r.fallback)) return invalid("fallback", `unknown backend \`${r.fallback}\` in \`fallback\``);
    return null;
  };
  // The model library: a Hub of three models, downloads moved on by the test (`library.progress`).
  const hubModels = [
    { id: "mlx-community/Qwen2.5-0.5B-Instruct-4bit", downloads: 120345, likes: 40, last_modified: "2026-11-02T10:00:00Z", size_bytes: 278_000_000, model_type: "qwen2", quantization: "4-bit, group 64", supported: true, gated: false, installed: false, details_error: null },
    { id: "mlx-community/Llama-3.2-1B-Instruct-8bit", downloads: 98000, likes: 12, last_modified: "2026-10-01T10:00:00Z", size_bytes: 1_300_000_000, model_type: "llama", quantization: "8-bit, group 64", supported: true, gated: false, installed: true, details_error: null },
    { id: "mlx-community/Whisper-large-v3", downloads: 5000, likes: 3, last_modified: "2026-11-20T10:00:00Z", size_bytes: 3_100_000_000, model_type: "whisper", quantization: null, supported: false, gated: false, installed: false, details_error: null },
  ];
  const library = {
    downloads: [],
    installed: [{ repo: "mlx-community/Llama-3.2-1B-Instruct-8bit", path: "/hf/models--mlx-community--Llama-3.2-1B-Instruct-8bit", size_bytes: 1_300_000_000, incomplete_bytes: 0, complete: true, model_type: "llama", supported: true, loaded: true }],
    nextId: 1,
    /** Moves a download to `bytes` (and `state`) and sends the event the shell would. */
    progress(id, bytes, state) {
      const d = library.downloads.find((x) => x.id === id);
      Object.assign(d, { bytes_done: bytes, state: state ?? d.state, bytes_per_second: (state ?? d.state) === "running" ? 10_000_000 : 0 });
      d.eta_seconds = d.state === "running" ? (d.bytes_total - bytes) / 10_000_000 : null;
      if (d.state === "completed") {
        d.files_done = d.files_total;
        d.path = `/hf/models--${d.repo.replace("/", "--")}/snapshots/abc`;
        library.installed.push({ repo: d.repo, path: `/hf/models--${d.repo.replace("/", "--")}`, size_bytes: d.bytes_total, incomplete_bytes: 0, complete: true, model_type: "qwen2", supported: true, loaded: false });
      }
      window.__emit("download-progress", { ...d });
    },
  };
  const download = (id) => library.downloads.find((d) => d.id === id) ?? null;
  const noDownload = (id) => fail({ kind: "not_found", message: `no download \`${id}\`` });
  const handlers = {
    search_models: ({ text, sort }) => {
      const words = text.toLowerCase().split(/\s+/).filter(Boolean);
      const found = hubModels.filter((m) => words.every((w) => m.id.toLowerCase().includes(w)));
      return [...found].sort((a, b) => (sort === "recent" ? b.last_modified.localeCompare(a.last_modified) : b.downloads - a.downloads));
    },
    list_downloads: () => library.downloads.map((d) => ({ ...d })),
    start_download: ({ repo }) => {
      const m = hubModels.find((x) => x.id === repo);
      if (!m) return fail({ kind: "not_found", message: `repo \`${repo}\` not found on the Hub` });
      if (m.size_bytes > 3e9) return fail({ kind: "library", code: "insufficient_disk_space", message: "not enough disk space: needs 3.1 GB, 1.0 GB free" });
      const d = { id: `dl_${String(library.nextId++).padStart(12, "0")}`, repo, revision: "main", state: "running", bytes_done: 0, bytes_total: m.size_bytes, bytes_per_second: 0, eta_seconds: null, files_done: 0, files_total: 6, path: null, error: null };
      library.downloads.push(d);
      return { ...d };
    },
    pause_download: ({ id }) => (download(id) ? (Object.assign(download(id), { state: "paused", bytes_per_second: 0, eta_seconds: null }), { ...download(id) }) : noDownload(id)),
    resume_download: ({ id }) => (download(id) ? (Object.assign(download(id), { state: "running" }), { ...download(id) }) : noDownload(id)),
    cancel_download: ({ id }) => {
      const d = download(id);
      if (!d) return noDownload(id);
      library.downloads = library.downloads.filter((x) => x !== d);
      return { ...d, state: d.state === "completed" ? "completed" : "cancelled" };
    },
    installed_models: () => library.installed.map((m) => ({ ...m })),
    delete_model: ({ repo, force }) => {
      const m = library.installed.find((x) => x.repo === repo);
      if (!m) return fail({ kind: "not_found", message: `\`${repo}\` is not in the cache` });
      if (m.loaded && !force) return fail({ kind: "conflict", message: `model \`${repo}\` is loaded` });
      library.installed = library.installed.filter((x) => x !== m);
      return { repo, freed_bytes: m.size_bytes, unloaded: m.loaded };
    },
    desktop_info: () => ({ os: cfg.os, dock_icon_applies: cfg.os === "macos", offers_tiny_model: cfg.os === "linux" }),
    set_desktop_settings: ({ desktop }) => {
      if (cfg.loginRefused && desktop.launch_at_login !== state.settings.desktop.launch_at_login) {
        return fail({ kind: "desktop", message: "cannot change launch at login: permission denied" });
      }
      state.settings = { ...state.settings, desktop };
      return desktop;
    },
    install_tiny_model: () => {
      if (!state.pool.available.some((m) => m.id === "tiny-llama")) {
        state.pool = { ...state.pool, available: [...state.pool.available, { id: "tiny-llama", path: "/data/models/tiny-llama", size_bytes: 300_000, loaded: false, model_type: "llama", supported: true }] };
      }
      return state.pool;
    },
    server_status: () => state.status,
    get_settings: () => state.settings,
    model_pool: () => state.pool,
    set_timeouts: ({ timeouts }) => {
      for (const [field, v] of Object.entries(timeouts)) {
        if (!(v >= 1 && v <= 86400)) return fail({ kind: "invalid", field, message: "must be between 1 and 86400 seconds" });
      }
      state.settings = { ...state.settings, timeouts };
      return timeouts;
    },
    reset_timeouts: () => {
      state.settings = { ...state.settings, timeouts: { chat_seconds: 900, completions_seconds: 600, embeddings_seconds: 120 } };
      return state.settings.timeouts;
    },
    set_pool_settings: ({ pool }) => {
      const drafts = Object.entries(pool.drafts ?? {});
      const own = drafts.find(([model, draft]) => model === draft);
      if (own) return invalid("drafts", `\`${own[0]}\` cannot be its own draft`);
      const unknown = [...pool.preload, ...drafts.flat()].find((id) => !cfg.models.includes(id));
      if (unknown) return fail({ kind: "model_not_found", model: unknown });
      state.settings = { ...state.settings, pool };
      window.__emit("settings-changed", state.settings);
      return pool;
    },
    audit_page: ({ filter, cursor, limit }) => {
      const all = entries.filter((e) => matches(e, filter));
      const start = cursor ? Number(cursor) : 0;
      const page = all.slice(start, start + (limit || 100));
      const next = start + page.length < all.length ? String(start + page.length) : null;
      return { entries: page, next_cursor: next };
    },
    audit_stats: ({ filter }) => {
      const all = entries.filter((e) => matches(e, filter));
      const count = (key) => all.reduce((m, e) => ((m[e[key]] = (m[e[key]] || 0) + 1), m), {});
      return {
        total: all.length,
        total_requests: all.length,
        by_status: count("status"),
        by_backend: count("backend_type"),
        by_model: count("model"),
        unique_models: Object.keys(count("model")).length,
        prompt_tokens: all.reduce((s, e) => s + e.prompt_tokens, 0),
        completion_tokens: all.reduce((s, e) => s + e.completion_tokens, 0),
        latency_p50_ms: all.length ? 300 : null,
        latency_p95_ms: all.length ? 850 : null,
        bucket_seconds: 3600,
        series: all.length ? [{ start: new Date(Math.floor(now / 3.6e6) * 3.6e6).toISOString(), requests: all.length, errors: all.filter((e) => e.status !== "success").length, avg_duration_ms: 400 }] : [],
      };
    },
    export_audit: ({ filter, path }) => {
      const rows = entries.filter((e) => matches(e, filter)).length;
      return { path, rows };
    },
    list_providers: () => providerList(),
    save_provider: ({ originalName: original_name, input }) => {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(input.name) || input.name === "local") return invalid("name", `invalid provider name \`${input.name}\``);
      const url = input.base_url || { openai: "https://api.openai.com/v1", anthropic: "https://api.anthropic.com" }[input.kind] || "";
      if (!/^https?:\/\/[^/]+/.test(url)) return invalid("base_url", `invalid base URL \`${url}\`: relative URL without a base`);
      const old = routing.providers.find((p) => p.config.name === original_name);
      if ((!old || original_name !== input.name) && routing.providers.some((p) => p.config.name === input.name)) {
        return fail({ kind: "conflict", message: `a provider named \`${input.name}\` already exists` });
      }
      const key = input.api_key === null ? old?.key ?? null : input.api_key || null;
      if (!key && (input.kind === "openai" || input.kind === "anthropic")) return invalid("api_key", `provider \`${input.name}\` needs an API key`);
      const config = { name: input.name, kind: input.kind, base_url: url, extra_headers: input.extra_headers, enabled: input.enabled, timeout_seconds: input.timeout_seconds };
      routing.providers = routing.providers.filter((p) => p !== old).concat([{ config, key }]);
      return providerList();
    },
    delete_provider: ({ name }) => {
      const users = routing.rules.filter((r) => r.backend === name || r.fallback === name).map((r) => r.id);
      if (users.length) return fail({ kind: "conflict", message: `provider \`${name}\` is used by routing rules [${users.join(", ")}]; change or delete them first` });
      routing.providers = routing.providers.filter((p) => p.config.name !== name);
      return providerList();
    },
    test_provider: ({ name }) =>
      name.includes("down") ? { ok: false, latency_ms: 3, status: null, message: `provider \`${name}\` is unreachable: connection refused` } : { ok: true, latency_ms: 42, status: 200, message: "HTTP 200" },
    list_rules: () => ruleList(),
    save_rule: ({ id, input }) => {
      const bad = checkRule(input);
      if (bad) return bad;
      if (id === null) routing.rules.push({ id: routing.nextId++, ...input });
      else routing.rules = routing.rules.map((r) => (r.id === id ? { id, ...input } : r));
      return ruleList();
    },
    delete_rule: ({ id }) => {
      routing.rules = routing.rules.filter((r) => r.id !== id);
      return ruleList();
    },
    reorder_rules: ({ ids }) => {
      routing.rules = routing.rules.map((r) => ({ ...r, priority: (ids.length - ids.indexOf(r.id)) * 10 }));
      return ruleList();
    },
    test_route: ({ model }) => {
      const rule = ruleList().find((r) => r.enabled && (r.match_type === "exact" ? model === r.pattern : r.match_type === "prefix" ? model.startsWith(r.pattern) : new RegExp(`^(?:${r.pattern})$`).test(model)));
      if (!rule) return { model, rule_id: null, backend: "local", backend_type: "local", backend_model: model, fallback: null, fallback_model: null };
      const kind = routing.providers.find((p) => p.config.name === rule.backend)?.config.kind ?? "local";
      return { model, rule_id: rule.id, backend: rule.backend, backend_type: kind, backend_model: rule.backend_model ?? model, fallback: rule.fallback, fallback_model: rule.fallback ? rule.fallback_model ?? model : null };
    },
    "plugin:dialog|save": ({ options }) => (window.__MOCK_SAVE_PATH__ === undefined ? `/tmp/${options.defaultPath}` : window.__MOCK_SAVE_PATH__),
  };

  const callbacks = new Map();
  const listeners = new Map();
  let nextId = 1;
  window.__calls = [];
  window.__MOCK__ = { cfg, state, entries, entry, routing, library };
  window.__TAURI_INTERNALS__ = {
    transformCallback(cb, once = false) {
      const id = nextId++;
      callbacks.set(id, (data) => {
        if (once) callbacks.delete(id);
        return cb && cb(data);
      });
      return id;
    },
    unregisterCallback(id) {
      callbacks.delete(id);
    },
    async invoke(cmd, args = {}) {
      if (cmd === "plugin:event|listen") {
        const list = listeners.get(args.event) || [];
        list.push(args.handler);
        listeners.set(args.event, list);
        return args.handler;
      }
      if (cmd === "plugin:event|unlisten") return null;
      window.__calls.push({ cmd, args: JSON.parse(JSON.stringify(args)) });
      const h = handlers[cmd];
      if (!h) throw new Error(`mock IPC: no handler for ${cmd}`);
      return h(args);
    },
    metadata: { currentWindow: { label: "settings" }, currentWebview: { windowLabel: "settings", label: "settings" } },
  };
  window.__TAURI_EVENT_PLUGIN_INTERNALS__ = { unregisterListener: () => {} };
  window.__emit = (event, payload) => {
    for (const id of listeners.get(event) || []) callbacks.get(id)?.({ event, id, payload });
  };
})();
