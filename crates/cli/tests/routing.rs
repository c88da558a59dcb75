//! Routing to real upstreams on 127.0.0.1: a second `mlx-manager serve` is both the
//! OpenAI-compatible and the Anthropic-format provider of a front `mlx-manager serve`, whose rules
//! route by exact/prefix/regex and priority, translate both ways (streaming and not), fall back when
//! an upstream is down, failing (500) or slow, not when it rejects the request, record the backend
//! in the audit log, and never let the upstream key out (logs, audit rows, exports, error bodies).

mod support;

use std::path::Path;
use std::process::Command;

use mlx_manager_engine::tiny::TinyFamily;
use serde_json::{json, Value};
use support::*;

const UPSTREAM_KEY: &str = "sk-upstream-Zq8v3LmN0pQr7sTu9wXy";

#[tokio::test(flavor = "multi_thread")]
async fn rules_route_translate_fall_back_and_audit_without_leaking_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let qwen = tiny(dir.path(), "tiny-qwen", TinyFamily::Qwen2);
    let llama = tiny(dir.path(), "tiny-llama", TinyFamily::Llama);
    let [agent, thinker] = scripted_models(dir.path());
    let upstream = serve(
        &dir.path().join("upstream"),
        &qwen,
        &["--api-key", UPSTREAM_KEY, "--model", agent.to_str().unwrap(), "--model", thinker.to_str().unwrap()],
    );
    let front_dir = dir.path().join("front");
    let front = serve(&front_dir, &llama, &[]);
    let mut api = Api::new(&front.url);

    // The upstream's own greedy answers are the reference for every routed call.
    let direct = reqwest::Client::new();
    let reference: Value = direct
        .post(format!("{}/v1/chat/completions", upstream.url))
        .bearer_auth(UPSTREAM_KEY)
        .json(&chat("tiny-qwen", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = reference["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let expected_prompt = reference["usage"]["prompt_tokens"].clone();
    assert!(!expected.is_empty());

    // Providers (the key only ever comes back as a hint).
    for (name, kind, base) in [
        ("up-openai", "openai_compatible", format!("{}/v1", upstream.url)),
        ("up-anthropic", "anthropic_compatible", upstream.url.clone()),
    ] {
        let view = api
            .ok("/admin/providers", json!({"name": name, "kind": kind, "base_url": base, "api_key": UPSTREAM_KEY}))
            .await;
        assert_eq!(view["api_key_hint"], "…9wXy");
        assert_eq!(view["key_storage"], "encrypted_file");
        let test = api.ok(&format!("/admin/providers/{name}/test"), json!({})).await;
        assert_eq!(test["ok"], true, "{test}");
    }
    for (name, base, timeout) in
        [("down", closed_port(), None), ("broken", failing_upstream(), None), ("slow", silent_upstream(), Some(1))]
    {
        api.ok(
            "/admin/providers",
            json!({"name": name, "kind": "openai_compatible", "base_url": base, "timeout_seconds": timeout}),
        )
        .await;
    }
    let test = api.ok("/admin/providers/down/test", json!({})).await;
    assert_eq!(test["ok"], false);
    let test = api.ok("/admin/providers/broken/test", json!({})).await;
    assert_eq!((test["ok"].clone(), test["status"].clone()), (json!(false), json!(500)), "{test}");

    // Rules: exact, prefix, regex, priorities, fallbacks.
    let rule =
        |pattern: &str, match_type: &str, priority: i32, backend: &str, model: &str, fallback: Option<(&str, &str)>| {
            json!({"pattern": pattern, "match_type": match_type, "priority": priority, "backend": backend,
            "backend_model": model, "fallback": fallback.map(|f| f.0), "fallback_model": fallback.map(|f| f.1)})
        };
    api.ok("/admin/routing-rules", rule("gpt-4o", "exact", 0, "up-openai", "tiny-qwen", None)).await;
    api.ok("/admin/routing-rules", rule("claude-", "prefix", 0, "up-anthropic", "tiny-qwen", None)).await;
    api.ok("/admin/routing-rules", rule("llama-[0-9]+b-local", "regex", 0, "local", "tiny-llama", None)).await;
    api.ok("/admin/routing-rules", rule("gpt-", "prefix", -5, "local", "tiny-llama", None)).await;
    let high = api.ok("/admin/routing-rules", rule("gpt-4", "prefix", 5, "up-anthropic", "tiny-qwen", None)).await;
    api.ok("/admin/routing-rules", rule("fb-down", "exact", 0, "down", "x", Some(("up-openai", "tiny-qwen")))).await;
    api.ok("/admin/routing-rules", rule("fb-broken", "exact", 0, "broken", "x", Some(("up-anthropic", "tiny-qwen"))))
        .await;
    api.ok("/admin/routing-rules", rule("fb-slow", "exact", 0, "slow", "x", Some(("local", "tiny-llama")))).await;
    api.ok(
        "/admin/routing-rules",
        rule("fb-rejected", "exact", 0, "up-openai", "missing-model", Some(("local", "tiny-llama"))),
    )
    .await;
    for (upstream, model) in
        [("up-anthropic", "agent"), ("up-anthropic", "thinker"), ("up-openai", "agent"), ("up-openai", "thinker")]
    {
        api.ok("/admin/routing-rules", rule(&format!("{model}-via-{upstream}"), "exact", 0, upstream, model, None))
            .await;
    }

    let route = |model: &str| json!({"model": model});
    for (model, backend, target) in [
        ("gpt-4o", "up-anthropic", "tiny-qwen"), // the priority-5 prefix rule beats the exact one
        ("gpt-3.5", "local", "tiny-llama"),
        ("claude-3-haiku", "up-anthropic", "tiny-qwen"),
        ("llama-70b-local", "local", "tiny-llama"),
        ("llama-70b-local-x", "local", "llama-70b-local-x"), // regex must match the whole name: no rule
        ("tiny-llama", "local", "tiny-llama"),
    ] {
        let t = api.ok("/admin/routing-rules/test", route(model)).await;
        assert_eq!(
            (t["backend"].as_str().unwrap(), t["backend_model"].as_str().unwrap()),
            (backend, target),
            "{model}: {t}"
        );
    }
    // Changing a rule takes effect at once: drop the priority-5 rule, gpt-4o goes to the exact rule.
    let (status, _, _) = api.call(reqwest::Method::DELETE, &format!("/admin/routing-rules/{}", high["id"]), None).await;
    assert_eq!(status, 204);
    let t = api.ok("/admin/routing-rules/test", route("gpt-4o")).await;
    assert_eq!(t["backend"], "up-openai");
    // Names routed by exact rules are models of this endpoint, owned by their backend.
    let (_, _, text) = api.call(reqwest::Method::GET, "/v1/models", None).await;
    let models: Value = serde_json::from_str(&text).unwrap();
    let listed = models["data"].as_array().unwrap();
    let gpt = listed.iter().find(|m| m["id"] == "gpt-4o").expect("gpt-4o listed");
    assert_eq!(gpt["owned_by"], "up-openai");
    assert!(listed.iter().any(|m| m["id"] == "tiny-llama"), "local models still listed");
    assert!(!listed.iter().any(|m| m["id"] == "claude-"), "prefix rules are not model names");
    let (status, _, text) = api.call(reqwest::Method::GET, "/v1/models/claude-3-haiku", None).await;
    assert_eq!(status, 200, "{text}");

    // OpenAI in, OpenAI upstream (pass-through) and Anthropic upstream (translated).
    for model in ["gpt-4o", "claude-3-haiku"] {
        let (status, headers, text) = api.post("/v1/chat/completions", chat(model, false)).await;
        assert_eq!(status, 200, "{text}");
        let r: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(r["choices"][0]["message"]["content"], expected.as_str(), "{model}");
        assert_eq!(r["choices"][0]["finish_reason"], "length");
        assert_eq!(
            (r["usage"]["prompt_tokens"].clone(), r["usage"]["completion_tokens"].clone()),
            (expected_prompt.clone(), json!(8))
        );
        let want = if model == "gpt-4o" { "up-openai" } else { "up-anthropic" };
        assert_eq!(backend(&headers), (want.to_string(), false));

        let (status, _, text) = api.post("/v1/chat/completions", chat(model, true)).await;
        assert_eq!(status, 200);
        let evs = events(&text);
        assert_eq!(evs.last().unwrap().1, "[DONE]", "{model}");
        let mut streamed = String::new();
        let mut usage = Value::Null;
        for (_, data) in &evs[..evs.len() - 1] {
            let chunk: Value = serde_json::from_str(data).unwrap();
            if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
                streamed.push_str(t);
            }
            if chunk["usage"].is_object() {
                usage = chunk["usage"].clone();
            }
        }
        assert_eq!(streamed, expected, "{model} streamed");
        assert_eq!(usage["completion_tokens"], 8, "{model}: {usage}");
    }

    // Anthropic in, OpenAI upstream (translated) and Anthropic upstream (pass-through).
    for model in ["gpt-4o", "claude-3-haiku"] {
        let (status, _, text) = api.post("/v1/messages", messages(model, false)).await;
        assert_eq!(status, 200, "{text}");
        let m: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["content"][0]["text"], expected.as_str(), "{model}");
        assert_eq!(m["stop_reason"], "max_tokens");
        assert_eq!(
            (m["usage"]["input_tokens"].clone(), m["usage"]["output_tokens"].clone()),
            (expected_prompt.clone(), json!(8))
        );

        let (status, _, text) = api.post("/v1/messages", messages(model, true)).await;
        assert_eq!(status, 200);
        let evs = events(&text);
        let names: Vec<&str> =
            evs.iter().map(|(n, _)| n.as_str()).filter(|n| *n != "ping" && *n != "content_block_delta").collect();
        assert_eq!(
            names,
            ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"],
            "{model}"
        );
        let streamed: String = evs
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap()["delta"]["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(streamed, expected, "{model} streamed");
        let delta: Value = serde_json::from_str(&evs.iter().find(|(n, _)| n == "message_delta").unwrap().1).unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
        assert_eq!(delta["usage"]["output_tokens"], 8);
    }

    // The official SDKs against the routed endpoint.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/check_routed.py");
    let out =
        Command::new(python()).arg(script).args([&front.url, "claude-3-haiku", "gpt-4o", &expected]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks passed"), "{stdout}");

    // Tool calls and reasoning through providers, both directions: the openai SDK's requests go to
    // the Anthropic-format upstream and the anthropic SDK's to the OpenAI-format one.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/check_tools.py");
    let out = Command::new(python())
        .arg(script)
        .args([
            &front.url,
            "agent-via-up-anthropic",
            "thinker-via-up-anthropic",
            "agent-via-up-openai",
            "thinker-via-up-openai",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks passed"), "{stdout}");

    // Structured output goes where it can be enforced: through to the OpenAI-format upstream; a
    // schema to the Anthropic-format one as its structured outputs (`output_config.format`, which
    // that upstream, a local engine, enforces), and any JSON object, which Anthropic's API cannot
    // ask for, refused by name (never silently dropped).
    let mut structured = chat("claude-3-haiku", false);
    structured["response_format"] = json!({"type": "json_object"});
    let (status, _, text) = api.post("/v1/chat/completions", structured.clone()).await;
    assert_eq!(status, 422, "{text}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["error"]["param"], "response_format", "{problem}");
    let digit = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["n"], "additionalProperties": false});
    structured["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "digit", "schema": digit, "strict": true}});
    structured["max_tokens"] = json!(200);
    let (status, headers, text) = api.post("/v1/chat/completions", structured).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(backend(&headers), ("up-anthropic".to_string(), false));
    let answer: Value = serde_json::from_str(&text).unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    let value: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {answer}"));
    let n = value.as_object().filter(|o| o.len() == 1).and_then(|o| o["n"].as_i64());
    assert!(n.is_some_and(|n| (0..=9).contains(&n)), "{answer}");
    let mut structured = chat("gpt-4o", false);
    structured["response_format"] = json!({"type": "json_object"});
    structured["max_tokens"] = json!(200);
    let (status, _, text) = api.post("/v1/chat/completions", structured).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["choices"][0]["message"]["content"].as_str().unwrap().starts_with('{'), "{answer}");

    // A regex rule to the local engine, under the backend's model name.
    let (status, headers, text) = api.post("/v1/chat/completions", chat("llama-7b-local", false)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(backend(&headers), ("local".to_string(), false));

    // Fallback: upstream down, 500, silent past its timeout — and not when the request is rejected.
    for (model, served_by) in [("fb-down", "up-openai"), ("fb-broken", "up-anthropic"), ("fb-slow", "local")] {
        let started = std::time::Instant::now();
        let (status, headers, text) = api.post("/v1/chat/completions", chat(model, false)).await;
        assert_eq!(status, 200, "{model}: {text}");
        assert_eq!(backend(&headers), (served_by.to_string(), true), "{model}");
        assert!(started.elapsed().as_secs() < 20, "{model} took {:?}", started.elapsed());
    }
    // The upstream rejects the request (it has no such model): its answer, no fallback.
    let (status, headers, text) = api.post("/v1/chat/completions", chat("fb-rejected", false)).await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(backend(&headers), ("up-openai".to_string(), false));
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("missing-model"), "{problem}");
    // A request invalid in itself is refused before routing: no backend sees it.
    let mut invalid = chat("fb-rejected", false);
    invalid["temperature"] = json!(5);
    let (status, headers, text) = api.post("/v1/chat/completions", invalid).await;
    assert_eq!(status, 422, "{text}");
    assert!(headers.get("x-mlx-backend").is_none(), "{headers:?}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["error"]["param"], "temperature");
    assert_eq!(problem["error"]["type"], "invalid_request_error");

    // A provider with a wrong key: the upstream's 401 is our configuration's fault (502).
    api.ok("/admin/providers", json!({"name": "wrong-key", "kind": "openai_compatible", "base_url": format!("{}/v1", upstream.url), "api_key": "sk-wrong-key-000000000000"})).await;
    api.ok("/admin/routing-rules", rule("wrong", "exact", 0, "wrong-key", "tiny-qwen", None)).await;
    let (status, _, text) = api.post("/v1/chat/completions", chat("wrong", false)).await;
    assert_eq!(status, 502, "{text}");
    assert!(!text.contains("sk-wrong-key"), "{text}");

    // The audit log: model as asked, the backend that served it, and whether a fallback did.
    let page = api.get("/admin/audit-logs?limit=1000").await;
    let entries = page["entries"].as_array().unwrap();
    let find = |model: &str| {
        // The oldest: the first request made with that name.
        entries
            .iter()
            .rev()
            .find(|e| e["model"] == model && e["endpoint"] == "/v1/chat/completions")
            .unwrap_or_else(|| panic!("no audit entry for {model}"))
    };
    for (model, backend_type, name, fallback) in [
        ("claude-3-haiku", "anthropic_compatible", Some("up-anthropic"), false),
        ("gpt-4o", "openai_compatible", Some("up-openai"), false),
        ("llama-7b-local", "local", None, false),
        ("fb-down", "openai_compatible", Some("up-openai"), true),
        ("fb-broken", "anthropic_compatible", Some("up-anthropic"), true),
        ("fb-slow", "local", None, true),
        ("fb-rejected", "openai_compatible", Some("up-openai"), false),
    ] {
        let e = find(model);
        assert_eq!(e["backend_type"], backend_type, "{model}: {e}");
        assert_eq!(e["backend_name"], json!(name), "{model}: {e}");
        assert_eq!(e["fallback"], fallback, "{model}: {e}");
        let status = if model == "fb-rejected" { "error" } else { "success" };
        assert_eq!(e["status"], status, "{model}: {e}");
    }
    assert_eq!(find("claude-3-haiku")["completion_tokens"], 8);
    let mut everything = String::new();
    for format in ["csv", "jsonl"] {
        let (_, _, export) =
            api.call(reqwest::Method::GET, &format!("/admin/audit-logs/export?format={format}"), None).await;
        everything.push_str(&export);
    }
    assert!(everything.contains("fb-broken"));
    everything.push_str(&serde_json::to_string(&page).unwrap());
    everything.push_str(&api.error_bodies.join("\n"));
    let (_, _, providers) = api.call(reqwest::Method::GET, "/admin/providers", None).await;
    everything.push_str(&providers);
    assert!(!everything.contains(UPSTREAM_KEY), "the key leaked into an API answer, audit row or export");

    // The key survives a restart (encrypted file), and is nowhere in plain text on disk or in the log.
    drop(front);
    let front = serve(&front_dir, &llama, &[]);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", front.url))
        .json(&chat("claude-3-x", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(front);
    // Every file: the database (and its WAL), the encrypted keys, the JSON log files in logs/.
    let mut files = Vec::new();
    let mut dirs = vec![front_dir.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|f| f.to_string_lossy().contains("/logs/")), "{files:?}");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes.windows(UPSTREAM_KEY.len()).any(|w| w == UPSTREAM_KEY.as_bytes());
        assert!(!found, "the key is in plain text in {}", path.display());
    }
    let log = std::fs::read_to_string(&upstream.log).unwrap();
    assert!(!log.contains(UPSTREAM_KEY), "the key leaked into the upstream's log");
    let front_logs: Vec<_> = std::fs::read_dir(&front_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("stderr-"))
        .collect();
    assert_eq!(front_logs.len(), 2);
    let mut saw_fallback_line = false;
    for path in front_logs {
        let log = std::fs::read_to_string(path).unwrap();
        assert!(!log.contains(UPSTREAM_KEY), "the key leaked into the log");
        saw_fallback_line |= log.contains("using the rule's fallback");
    }
    assert!(saw_fallback_line, "fallbacks are logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_providers_and_rules_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let llama = tiny(dir.path(), "tiny-llama", TinyFamily::Llama);
    let front = serve(&dir.path().join("front"), &llama, &[]);
    let mut api = Api::new(&front.url);
    let expect = |status: u16, text: &str, want_status: u16, field: Option<&str>| {
        assert_eq!(status, want_status, "{text}");
        let p: Value = serde_json::from_str(text).unwrap();
        if want_status >= 400 {
            assert_eq!(p["status"], want_status);
        }
        if let Some(field) = field {
            assert_eq!(p["errors"][0]["field"], field, "{p}");
        }
    };
    let provider = |name: &str, kind: &str, base: &str, key: Option<&str>| json!({"name": name, "kind": kind, "base_url": base, "api_key": key});
    let (s, _, t) = api.post("/admin/providers", provider("p", "openai_compatible", "127.0.0.1:9/v1", None)).await;
    expect(s, &t, 422, Some("base_url"));
    let (s, _, t) = api.post("/admin/providers", provider("p", "openai_compatible", "ftp://host/v1", None)).await;
    expect(s, &t, 422, Some("base_url"));
    let (s, _, t) = api.post("/admin/providers", provider("p", "openai", "", None)).await;
    expect(s, &t, 422, Some("api_key"));
    let (s, _, t) = api.post("/admin/providers", provider("local", "openai_compatible", "http://h/v1", None)).await;
    expect(s, &t, 422, Some("name"));
    let (s, _, t) = api.post("/admin/providers", provider("p", "grok", "http://h/v1", None)).await;
    expect(s, &t, 422, Some("kind"));
    let (s, _, t) =
        api.post("/admin/providers", provider("p", "openai_compatible", "http://127.0.0.1:9/v1", None)).await;
    expect(s, &t, 201, None);
    let (s, _, t) =
        api.post("/admin/providers", provider("p", "openai_compatible", "http://127.0.0.1:9/v1", None)).await;
    expect(s, &t, 409, None);
    // A hosted provider's default URL, with its key.
    let (s, _, t) = api.post("/admin/providers", provider("oa", "openai", "", Some("sk-test-123456789012"))).await;
    expect(s, &t, 201, None);
    assert_eq!(serde_json::from_str::<Value>(&t).unwrap()["base_url"], "https://api.openai.com/v1");

    let rule = |pattern: &str, match_type: &str, backend: &str| json!({"pattern": pattern, "match_type": match_type, "backend": backend});
    let (s, _, t) = api.post("/admin/routing-rules", rule("gpt-(", "regex", "p")).await;
    expect(s, &t, 422, Some("pattern"));
    let (s, _, t) = api.post("/admin/routing-rules", rule("gpt-", "prefix", "nowhere")).await;
    expect(s, &t, 422, Some("backend"));
    let (s, _, t) = api
        .post(
            "/admin/routing-rules",
            json!({"pattern": "x", "match_type": "exact", "backend": "p", "fallback": "nope"}),
        )
        .await;
    expect(s, &t, 422, Some("fallback"));
    let (s, _, t) = api.post("/admin/routing-rules", rule("x", "glob", "p")).await;
    expect(s, &t, 422, Some("match_type"));
    let (s, _, t) = api.post("/admin/routing-rules", rule("gpt-", "prefix", "p")).await;
    expect(s, &t, 201, None);
    let id = serde_json::from_str::<Value>(&t).unwrap()["id"].as_u64().unwrap();
    let (s, _, t) = api.call(reqwest::Method::DELETE, "/admin/providers/p", None).await;
    expect(s, &t, 409, None);
    assert!(t.contains(&format!("[{id}]")), "{t}");
    let (s, _, t) = api.call(reqwest::Method::PUT, "/admin/routing-rules/999", Some(rule("a", "exact", "local"))).await;
    expect(s, &t, 404, None);
    let (s, _, t) = api.call(reqwest::Method::PUT, "/admin/routing-rules/order", Some(json!({"ids": [id, 42]}))).await;
    expect(s, &t, 422, Some("ids"));
    // Renaming a provider carries its rules along.
    let (s, _, t) = api
        .call(
            reqwest::Method::PUT,
            "/admin/providers/p",
            Some(provider("q", "openai_compatible", "http://127.0.0.1:9/v1", None)),
        )
        .await;
    expect(s, &t, 200, None);
    let rules = api.get("/admin/routing-rules").await;
    assert_eq!(rules["rules"][0]["backend"], "q");
    let t = api.ok("/admin/routing-rules/test", json!({"model": "gpt-x"})).await;
    assert_eq!(t["backend"], "q");
    // A disabled provider is skipped: its rule matches nothing (no fallback here), the name stays local.
    let mut disabled = provider("q", "openai_compatible", "http://127.0.0.1:9/v1", None);
    disabled["enabled"] = json!(false);
    let (s, _, t) = api.call(reqwest::Method::PUT, "/admin/providers/q", Some(disabled)).await;
    expect(s, &t, 200, None);
    let t = api.ok("/admin/routing-rules/test", json!({"model": "gpt-x"})).await;
    assert_eq!((t["backend"].clone(), t["rule_id"].clone()), (json!("local"), Value::Null));
    let mut enabled = provider("q", "openai_compatible", "http://127.0.0.1:9/v1", None);
    enabled["enabled"] = json!(true);
    api.call(reqwest::Method::PUT, "/admin/providers/q", Some(enabled)).await;
    // A request the target API cannot express is refused, naming the parameter.
    let (s, _, _) =
        api.call(reqwest::Method::PUT, &format!("/admin/routing-rules/{id}"), Some(rule("gpt-", "prefix", "q"))).await;
    assert_eq!(s, 200);
    let mut anth = json!({"name": "anth", "kind": "anthropic_compatible", "base_url": "http://127.0.0.1:9"});
    let (s, _, t) = api.post("/admin/providers", anth.take()).await;
    expect(s, &t, 201, None);
    api.post("/admin/routing-rules", rule("claude", "exact", "anth")).await;
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}], "logprobs": true});
    let (s, _, t) = api.post("/v1/chat/completions", body).await;
    expect(s, &t, 422, Some("logprobs"));
    let (s, _, t) = api.post("/v1/embeddings", json!({"model": "claude", "input": "hi"})).await;
    expect(s, &t, 422, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_timeout_applies_to_routed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let llama = tiny(dir.path(), "tiny-llama", TinyFamily::Llama);
    let front = serve(&dir.path().join("front"), &llama, &["--chat-timeout", "3"]);
    let mut api = Api::new(&front.url);
    api.ok("/admin/providers", json!({"name": "silent", "kind": "openai_compatible", "base_url": silent_upstream()}))
        .await;
    api.ok("/admin/routing-rules", json!({"pattern": "slow-model", "match_type": "exact", "backend": "silent"})).await;
    let started = std::time::Instant::now();
    let (status, headers, text) = api.post("/v1/chat/completions", chat("slow-model", false)).await;
    assert_eq!(status, 408, "{text}");
    assert!(started.elapsed().as_secs_f64() < 10.0);
    assert_eq!(backend(&headers), ("silent".to_string(), false));
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["timeout_seconds"], 3);
    let page = api.get("/admin/audit-logs?model=slow-model").await;
    assert_eq!(page["entries"][0]["status"], "timeout");
    assert_eq!(page["entries"][0]["backend_name"], "silent");

    // A provider that times out after 2 s falls back to the local engine, which gets what is left
    // of the request's 3 s, not a fresh 3 s: a long local answer ends in a 408 at ~3 s.
    let slow =
        json!({"name": "slow", "kind": "openai_compatible", "base_url": silent_upstream(), "timeout_seconds": 2});
    api.ok("/admin/providers", slow).await;
    let rule = json!({"pattern": "slow-then-local", "match_type": "exact", "backend": "slow",
        "fallback": "local", "fallback_model": "tiny-llama"});
    api.ok("/admin/routing-rules", rule).await;
    let mut body = chat("slow-then-local", false);
    body["max_tokens"] = json!(30_000);
    let started = std::time::Instant::now();
    let (status, headers, text) = api.post("/v1/chat/completions", body).await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(status, 408, "{text}");
    assert!((2.9..4.5).contains(&took), "took {took:.2} s");
    assert_eq!(backend(&headers), ("local".to_string(), true));
    let page = api.get("/admin/audit-logs?model=slow-then-local").await;
    assert_eq!(page["entries"][0]["status"], "timeout");
    assert_eq!(page["entries"][0]["fallback"], true);
}
