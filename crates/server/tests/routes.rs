//! The routes as clients use them: JSON and SSE shapes, usage, audit entries, admission,
//! timeouts and disconnects.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use mlx_manager_core::AuditStatus;
use serde_json::json;

async fn sse(response: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut events = Vec::new();
    let mut stream = response.bytes_stream().eventsource();
    while let Some(event) = stream.next().await {
        let event = event.expect("valid SSE");
        events.push((event.event, event.data));
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completion_and_its_audit_entry() {
    let s = TestServer::start().await;
    let r = s.post("/v1/chat/completions", chat(6)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 6);
    let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 3);
    let e = s.audit_entry(&id).await;
    assert_eq!(
        (e.status, e.model.as_str(), e.completion_tokens, e.prompt_tokens as u64),
        (AuditStatus::Success, MODEL, 6, prompt)
    );
    assert_eq!(e.total_tokens as u64, prompt + 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_chat_equals_the_non_streamed_answer() {
    let s = TestServer::start().await;
    let full: serde_json::Value = s.post("/v1/chat/completions", chat(12)).send().await.unwrap().json().await.unwrap();
    let mut req = chat(12);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let events = sse(s.post("/v1/chat/completions", req).send().await.unwrap()).await;
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<serde_json::Value> =
        events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, full["choices"][0]["message"]["content"].as_str().unwrap());
    let finish = chunks.iter().find(|c| c["choices"][0]["finish_reason"].is_string()).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_with_several_prompts_echo_and_stop() {
    let s = TestServer::start().await;
    let body: serde_json::Value = s
        .post(
            "/v1/completions",
            json!({"model": MODEL, "prompt": ["The sea", "A tiny"], "max_tokens": 5, "temperature": 0, "echo": true}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"].as_array().unwrap().len(), 2);
    assert!(body["choices"][0]["text"].as_str().unwrap().starts_with("The sea"));
    assert!(body["choices"][1]["text"].as_str().unwrap().starts_with("A tiny"));
    assert_eq!(body["usage"]["completion_tokens"], 10);
    // A stop string taken from the greedy text cuts it there.
    let plain: serde_json::Value = s
        .post("/v1/completions", json!({"model": MODEL, "prompt": "The sea", "max_tokens": 30, "temperature": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = plain["choices"][0]["text"].as_str().unwrap().to_string();
    let chars: Vec<char> = text.chars().collect();
    let stop: String = chars[6..9].iter().collect();
    let cut: serde_json::Value = s
        .post(
            "/v1/completions",
            json!({"model": MODEL, "prompt": "The sea", "max_tokens": 30, "temperature": 0, "stop": stop}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cut["choices"][0]["text"], &text[..text.find(&stop).unwrap()]);
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_float_and_base64_agree() {
    let s = TestServer::start().await;
    let float: serde_json::Value = s
        .post("/v1/embeddings", json!({"model": MODEL, "input": ["hello", "world"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(float["data"].as_array().unwrap().len(), 2);
    let v: Vec<f32> = serde_json::from_value(float["data"][1]["embedding"].clone()).unwrap();
    let b64: serde_json::Value = s
        .post("/v1/embeddings", json!({"model": MODEL, "input": "world", "encoding_format": "base64"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(b64["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let decoded: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    // "world" alone vs batched with "hello" (same length: one batch): equal up to float rounding.
    assert_eq!(decoded.len(), v.len());
    assert!(decoded.iter().zip(&v).all(|(a, b)| (a - b).abs() < 1e-5), "{decoded:?} vs {v:?}");
    let r = s.post("/v1/embeddings", json!({"model": MODEL, "input": "x", "dimensions": 8})).send().await.unwrap();
    assert_problem(r, 422, "validation_error").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_messages_json_and_events() {
    let s = TestServer::start().await;
    let req = json!({"model": MODEL, "max_tokens": 7, "system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "temperature": 0});
    let r = s.post("/v1/messages", req.clone()).header("anthropic-version", "2023-06-01").send().await.unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["usage"]["output_tokens"], 7);
    let mut streaming = req;
    streaming["stream"] = json!(true);
    let events = sse(s.post("/v1/messages", streaming).send().await.unwrap()).await;
    let names: Vec<&str> =
        events.iter().map(|(e, _)| e.as_str()).filter(|e| *e != "content_block_delta" && *e != "ping").collect();
    assert_eq!(names, ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]);
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, body["content"][0]["text"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn models_and_admin_routes() {
    let s = TestServer::start().await;
    let list: serde_json::Value = s.get("/v1/models").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"][0]["id"], MODEL);
    let one: serde_json::Value = s.get(&format!("/v1/models/{MODEL}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["object"], "model");
    let pre: serde_json::Value =
        s.client.post(format!("{}/admin/models/{MODEL}/preload", s.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(pre["loaded"]["id"], MODEL);
    assert_eq!(pre["loaded"]["pinned"], true, "an explicit preload pins the model");
    let admin: serde_json::Value = s.get("/admin/models").send().await.unwrap().json().await.unwrap();
    assert_eq!(admin["available"][0]["loaded"], true);
    assert!(admin["available"][0]["size_bytes"].as_u64().unwrap() > 0);
    // An unquantized model has no dense copy (crates/cli/tests/serve.rs covers a quantized one).
    assert_eq!(admin["loaded"][0]["dequantized"], false);
    let health: serde_json::Value = s.get("/health").send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    // `force` must be a boolean; checked before anything is unloaded.
    let r = s.client.delete(format!("{}/admin/models/{MODEL}?force=maybe", s.url)).send().await.unwrap();
    let problem = assert_problem(r, 422, "validation_error").await;
    assert_eq!(problem["errors"][0]["field"], "force");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_server_answers_429_with_retry_after() {
    let s = TestServer::with(Default::default(), 1).await;
    let mut long = chat(500_000);
    long["stream"] = json!(true);
    let r = s.post("/v1/chat/completions", long).send().await.unwrap();
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    let r = s.post("/v1/chat/completions", chat(2)).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    assert_problem(r, 429, "overloaded").await;
    drop(body);
    assert!(s.engine_idle().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_apply_at_runtime_and_free_the_engine() {
    let s = TestServer::start().await;
    let r = s
        .client
        .put(format!("{}/admin/settings/timeouts", s.url))
        .json(&json!({"chat_seconds": 1, "completions_seconds": 1, "embeddings_seconds": 120}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    let r = s.post("/v1/chat/completions", chat(500_000)).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = assert_problem(r, 408, "timeout").await;
    assert_eq!(body["timeout_seconds"], 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(s.engine_idle().await, "generation kept running after the timeout");
    assert_eq!(s.audit_entry(&id).await.status, AuditStatus::Timeout);
    // Streaming: the timeout arrives as an error event, then the stream ends.
    let mut req = chat(500_000);
    req["stream"] = json!(true);
    let events = sse(s.post("/v1/chat/completions", req).send().await.unwrap()).await;
    let last: serde_json::Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(last["error"]["code"], "timeout");
    assert!(s.engine_idle().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_frees_the_engine_and_is_audited_cancelled() {
    let s = TestServer::start().await;
    let mut req = chat(500_000);
    req["stream"] = json!(true);
    let r = s.post("/v1/chat/completions", req).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut body = r.bytes_stream();
    for _ in 0..3 {
        body.next().await.unwrap().unwrap();
    }
    assert!(s.state.engine.status().await.unwrap().running >= 1);
    drop(body);
    assert!(s.engine_idle().await, "generation kept running after the client left");
    assert_eq!(s.audit_entry(&id).await.status, AuditStatus::Cancelled);
}

/// `chat_template_kwargs` and `reasoning_effort` reach the chat template: a model whose template
/// adds a number of special tokens (one token each) that depends on `enable_thinking` and
/// `reasoning_effort`, so the prompt's token count shows what the template saw.
#[tokio::test(flavor = "multi_thread")]
async fn chat_template_kwargs_and_reasoning_effort_reach_the_template() {
    use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};

    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny-kwargs");
    write_tiny_model(&folder, &TinySpec::new(TinyFamily::Qwen2)).unwrap();
    let config_path = folder.join("tokenizer_config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["chat_template"] = json!(concat!(
        "{%- for message in messages %}{{ message['content'] }}{% endfor %}",
        "{%- if enable_thinking is defined %}",
        "{% for _ in range(2 if enable_thinking else 5) %}{{ eos_token }}{% endfor %}{% endif %}",
        "{%- if reasoning_effort is defined %}",
        "{% for _ in range({'low': 10, 'medium': 20, 'high': 30}[reasoning_effort]) %}{{ eos_token }}{% endfor %}",
        "{% endif %}",
    ));
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    s.state.registry.insert("tiny-kwargs", &folder);

    let prompt_tokens = |extra: serde_json::Value| {
        let mut req =
            json!({"model": "tiny-kwargs", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 1});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        let request = s.post("/v1/chat/completions", req);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.unwrap();
            body["usage"]["prompt_tokens"].as_u64().unwrap()
        }
    };
    let base = prompt_tokens(json!({})).await;
    assert_eq!(prompt_tokens(json!({"chat_template_kwargs": null, "reasoning_effort": null})).await, base);
    assert_eq!(prompt_tokens(json!({"chat_template_kwargs": {}})).await, base);
    assert_eq!(prompt_tokens(json!({"chat_template_kwargs": {"unused_by_the_template": 1}})).await, base);
    assert_eq!(prompt_tokens(json!({"chat_template_kwargs": {"enable_thinking": true}})).await, base + 2);
    assert_eq!(prompt_tokens(json!({"chat_template_kwargs": {"enable_thinking": false}})).await, base + 5);
    assert_eq!(prompt_tokens(json!({"reasoning_effort": "low"})).await, base + 10);
    assert_eq!(prompt_tokens(json!({"reasoning_effort": "high"})).await, base + 30);
    // chat_template_kwargs wins over the top-level parameter.
    let both = json!({"reasoning_effort": "high", "chat_template_kwargs": {"enable_thinking": false, "reasoning_effort": "medium"}});
    assert_eq!(prompt_tokens(both).await, base + 5 + 20);
}
