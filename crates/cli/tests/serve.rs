//! The real `mlx-manager serve` binary on 127.0.0.1:0 with a generated model: driven by the
//! official openai and anthropic Python SDKs, and shut down by SIGTERM while a request runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};

mod support;

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Server {
    start_with_env(extra, &[])
}

fn start_with_env(extra: &[&str], env: &[(&str, &Path)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-qwen");
    write_tiny_model(&model, &TinySpec { max_position_embeddings: 1_000_000, ..TinySpec::new(TinyFamily::Qwen2) })
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlx-manager"))
        .args(["serve", "--port", "0", "--model"])
        .arg(&model)
        .args(extra)
        .env("HOME", dir.path())
        .env_remove("HF_HOME")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, url, _dir: dir }
}

fn python() -> PathBuf {
    let venv = std::env::var_os("MLX_MANAGER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlx-manager/venv"));
    let python = venv.join("bin/python3");
    assert!(python.is_file(), "run scripts/setup first (no venv at {})", venv.display());
    python
}

#[test]
fn official_sdks_work_against_the_server() {
    let server = start(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/check_sdks.py");
    let out = Command::new(python()).arg(script).args([&server.url, "tiny-qwen"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[test]
fn official_sdks_call_tools_and_read_reasoning() {
    let models = tempfile::tempdir().unwrap();
    let [agent, thinker] = support::scripted_models(models.path());
    let server = start(&["--model", agent.to_str().unwrap(), "--model", thinker.to_str().unwrap()]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/check_tools.py");
    let out = Command::new(python())
        .arg(script)
        .args([&server.url, "agent", "thinker", "agent", "thinker"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[test]
fn structured_output_and_forced_tool_calls_hold_on_a_random_model() {
    let models = tempfile::tempdir().unwrap();
    let model = support::random_hermes_model(models.path());
    let server = start(&["--model", model.to_str().unwrap()]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/check_structured.py");
    let out = Command::new(python()).arg(script).args([&server.url, "random-hermes"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_then_exits_zero() {
    let mut server = start(&["--drain-seconds", "10"]);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "tiny-qwen", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 400, "temperature": 0});
    let url = format!("{}/v1/chat/completions", server.url);
    let in_flight = tokio::spawn({
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // New requests during the drain get 503 with Retry-After.
    let late = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(late.status().as_u16(), 503);
    assert!(late.headers().contains_key("retry-after"));
    assert_eq!(in_flight.await.unwrap(), 200, "the in-flight request must finish");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn models_in_the_hugging_face_cache_are_served_by_repo_id() {
    let hf = tempfile::tempdir().unwrap();
    let snapshot = hf.path().join("hub/models--tiny-org--tiny-llama/snapshots/0123abcd");
    write_tiny_model(&snapshot, &TinySpec::new(TinyFamily::Llama)).unwrap();
    let server = start_with_env(&[], &[("HF_HOME", hf.path())]);
    let client = reqwest::Client::new();
    let list: serde_json::Value =
        client.get(format!("{}/v1/models", server.url)).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tiny-org/tiny-llama", "tiny-qwen"]);
    let body = serde_json::json!({"model": "tiny-org/tiny-llama", "prompt": "hi", "max_tokens": 3});
    let r: serde_json::Value =
        client.post(format!("{}/v1/completions", server.url)).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["usage"]["completion_tokens"], 3);
    let one = client.get(format!("{}/v1/models/tiny-org/tiny-llama", server.url)).send().await.unwrap();
    assert_eq!(one.status(), 200);
}

/// Whether `tiny-qwen` is loaded, per `GET /admin/models`.
async fn loaded(client: &reqwest::Client, url: &str) -> bool {
    let pool: serde_json::Value = client.get(format!("{url}/admin/models")).send().await.unwrap().json().await.unwrap();
    pool["loaded"].as_array().unwrap().iter().any(|m| m["id"] == "tiny-qwen")
}

/// Polls until the model is unloaded; false after `secs`.
async fn unloaded_within(client: &reqwest::Client, url: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if !loaded(client, url).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_ttl_and_keep_alive_apply_to_openai_and_anthropic_routes() {
    let server = start(&["--idle-ttl-seconds", "1"]);
    let url = server.url.as_str();
    let client = reqwest::Client::new();
    let chat = |keep_alive: serde_json::Value| {
        serde_json::json!({"model": "tiny-qwen", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "keep_alive": keep_alive})
    };

    // The default TTL unloads a model used through the Anthropic route.
    let messages =
        serde_json::json!({"model": "tiny-qwen", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]});
    let r = client.post(format!("{url}/v1/messages")).json(&messages).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(unloaded_within(&client, url, 10).await, "the 1 s idle TTL did not unload the model");

    // keep_alive -1 (OpenAI route) keeps it loaded well past the default TTL …
    let r = client.post(format!("{url}/v1/chat/completions")).json(&chat(serde_json::json!(-1))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(loaded(&client, url).await, "keep_alive -1 did not keep the model loaded");

    // … until a later request says otherwise ("0s" through the Anthropic route: unload when idle).
    let mut short = messages.clone();
    short["keep_alive"] = serde_json::json!("0s");
    let r = client.post(format!("{url}/v1/messages")).json(&short).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(unloaded_within(&client, url, 10).await, "keep_alive 0s did not unload the model");

    // A keep_alive that is not a duration is a 422 naming the field.
    let r =
        client.post(format!("{url}/v1/chat/completions")).json(&chat(serde_json::json!("soon"))).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "keep_alive", "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_models_says_when_a_quantized_model_runs_from_a_dequantized_copy() {
    let dir = tempfile::tempdir().unwrap();
    let q4 = dir.path().join("tiny-q4");
    write_tiny_model(&q4, &TinySpec { quantize: Some((4, 64)), ..TinySpec::new(TinyFamily::Llama) }).unwrap();
    let client = reqwest::Client::new();
    // On the CPU the copy is the default; --keep-quantized keeps the packed weights.
    for (flag, dequantized) in [(None, true), (Some("--keep-quantized"), false)] {
        let mut args = vec!["--model", q4.to_str().unwrap()];
        args.extend(flag);
        let server = start(&args);
        let r = client.post(format!("{}/admin/models/tiny-q4/preload", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{flag:?}");
        let pool: serde_json::Value =
            client.get(format!("{}/admin/models", server.url)).send().await.unwrap().json().await.unwrap();
        let model = pool["loaded"].as_array().unwrap().iter().find(|m| m["id"] == "tiny-q4").expect("loaded");
        assert_eq!(model["quantization"], serde_json::json!([4, 64]), "{flag:?}: the files' bits either way");
        assert_eq!(model["dequantized"], dequantized, "{flag:?}: {model}");
        // The loading-progress stream's `ready` says it too (a late subscriber gets it at once).
        let r = client.get(format!("{}/admin/models/tiny-q4/loading-progress", server.url)).send().await.unwrap();
        let events = sse_events(r, |_| false).await;
        let [ready] = events.as_slice() else { panic!("{flag:?}: {events:?}") };
        assert_eq!(ready["state"], "ready", "{flag:?}: {ready}");
        assert_eq!(ready["quantization"], serde_json::json!([4, 64]), "{flag:?}: {ready}");
        assert_eq!(ready["dequantized"], dequantized, "{flag:?}: {ready}");
        assert_eq!(ready["weight_bytes"], model["weight_bytes"], "{flag:?}: the copy's bytes when dequantized");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn preloaded_models_are_loaded_and_pinned_at_start_up() {
    let server = start(&["--preload", "tiny-qwen", "--idle-ttl-seconds", "1"]);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pool = loop {
        let pool: serde_json::Value =
            client.get(format!("{}/admin/models", server.url)).send().await.unwrap().json().await.unwrap();
        if pool["loaded"].as_array().is_some_and(|l| !l.is_empty()) {
            break pool;
        }
        assert!(Instant::now() < deadline, "tiny-qwen was not preloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pool["loaded"][0]["id"], "tiny-qwen");
    assert_eq!(pool["loaded"][0]["pinned"], true);
    // Pinned: the 1 s idle TTL does not unload it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(loaded(&client, &server.url).await);

    // An unknown id is a start-up error that names it.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mlx-manager"))
        .args(["serve", "--port", "0", "--no-hf-cache", "--preload", "nope"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--preload nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `data:` payloads of SSE events read from `response` until it ends or `until` says stop.
async fn sse_events(
    mut response: reqwest::Response,
    until: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) =
        tokio::time::timeout(Duration::from_secs(20), response.chunk()).await.expect("SSE stalled").unwrap()
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    let event: serde_json::Value = serde_json::from_str(data).unwrap();
                    let stop = until(&event);
                    events.push(event);
                    if stop {
                        return events;
                    }
                }
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn loading_progress_streams_from_not_loaded_to_ready_and_late_subscribers_get_the_state() {
    let server = start(&[]);
    let url = server.url.clone();
    let client = reqwest::Client::new();
    let progress = format!("{url}/admin/models/tiny-qwen/loading-progress");
    let r = client.get(&progress).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let reader = tokio::spawn(sse_events(r, |e| e["state"] == "ready" || e["state"] == "failed"));
    // Let the subscriber see `not_loaded` first, then load the model.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pre = client.post(format!("{url}/admin/models/tiny-qwen/preload")).send().await.unwrap();
    assert_eq!(pre.status(), 200);
    let events = reader.await.unwrap();
    let states: Vec<&str> = events.iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states.first(), Some(&"not_loaded"), "{events:?}");
    assert_eq!(states.last(), Some(&"ready"), "{events:?}");
    assert!(states.contains(&"loading"), "{events:?}");
    let fractions: Vec<f64> = events.iter().filter_map(|e| e["fraction"].as_f64()).collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "progress went backwards: {fractions:?}");
    let ready = events.last().unwrap();
    assert_eq!(ready["model"], "tiny-qwen");
    assert!(ready["weight_bytes"].as_u64().unwrap() > 0);
    // Unquantized: no dense copy (a 4-bit one: admin_models_says_when_a_quantized_model_runs_…).
    assert_eq!((&ready["quantization"], &ready["dequantized"]), (&serde_json::Value::Null, &serde_json::json!(false)));

    // A late subscriber is told `ready` at once, and the stream ends.
    let r = client.get(&progress).send().await.unwrap();
    let events = sse_events(r, |_| false).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["state"], "ready");

    let r = client.get(format!("{url}/admin/models/nope/loading-progress")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_long_prompt_is_served_from_the_prompt_cache_and_says_so() {
    let server = start(&[]);
    let mut api = support::Api::new(&server.url);
    let long = "The harbour town woke slowly while the boats came in with the tide. ".repeat(40);
    let body = serde_json::json!({"model": "tiny-qwen", "messages": [{"role": "user", "content": long}], "max_tokens": 6, "temperature": 0});
    let first = api.ok("/v1/chat/completions", body.clone()).await;
    let second = api.ok("/v1/chat/completions", body).await;
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let prompt_tokens = second["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(), Some(prompt_tokens - 1));
    assert_eq!(first["choices"][0]["message"]["content"], second["choices"][0]["message"]["content"]);
    // The Anthropic route reports it as Anthropic does.
    let m = api
        .ok(
            "/v1/messages",
            serde_json::json!({"model": "tiny-qwen", "max_tokens": 6, "temperature": 0, "messages": [{"role": "user", "content": long}]}),
        )
        .await;
    assert!(m["usage"]["cache_read_input_tokens"].as_u64().unwrap() > 256, "{m}");
}
