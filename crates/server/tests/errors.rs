//! Every error, on every kind of route, is one problem document with the member the route's SDK
//! reads; security checks (Host, Origin, API key) and draining answer the same way.

mod common;

use common::*;
use mlx_manager_server::ServerSettings;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_and_methods() {
    let s = TestServer::start().await;
    let body = assert_problem(s.get("/v2/nothing").send().await.unwrap(), 404, "not_found").await;
    assert_eq!(body["type"], "https://mlx-manager.dev/errors/not_found");
    assert_eq!(body["error"]["type"], "not_found_error");
    assert_problem(
        s.client.delete(format!("{}/v1/chat/completions", s.url)).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies() {
    let s = TestServer::start().await;
    let url = format!("{}/v1/chat/completions", s.url);
    let r = s.client.post(&url).header("content-type", "application/json").body("{\"model\": ").send().await.unwrap();
    assert_problem(r, 400, "invalid_json").await;
    let r = s.client.post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;
    let r = s
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_json").await;
    let r = s.client.post(&url).header("content-type", "application/json").body("[1, 2]").send().await.unwrap();
    assert_problem(r, 400, "invalid_json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_limit_is_413() {
    let s = TestServer::with(ServerSettings { max_body_bytes: 1024, ..ServerSettings::default() }, 4).await;
    let big = json!({"model": MODEL, "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let body =
        assert_problem(s.post("/v1/chat/completions", big).send().await.unwrap(), 413, "payload_too_large").await;
    assert!(body["detail"].as_str().unwrap().contains("1024"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_and_invalid_parameters_are_422_naming_the_field() {
    let s = TestServer::start().await;
    let mut req = chat(4);
    req["logit_bias"] = json!({"42": 5});
    let body = assert_problem(s.post("/v1/chat/completions", req).send().await.unwrap(), 422, "validation_error").await;
    assert_eq!(body["error"]["param"], "logit_bias");
    assert_eq!(body["errors"][0]["field"], "logit_bias");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("not supported"));

    let mut req = chat(4);
    req["temperature"] = json!(-1);
    let body = assert_problem(s.post("/v1/chat/completions", req).send().await.unwrap(), 422, "validation_error").await;
    assert_eq!(body["error"]["param"], "temperature");

    let body = assert_problem(
        s.post("/v1/chat/completions", json!({"messages": []})).send().await.unwrap(),
        422,
        "validation_error",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "model");

    let mut req = chat(4);
    req["messages"] = json!([{"role": "user", "content": 42}]);
    let body = assert_problem(s.post("/v1/chat/completions", req).send().await.unwrap(), 422, "validation_error").await;
    assert!(body["errors"][0]["field"].as_str().unwrap().starts_with("messages[0]"), "{body}");

    let mut req = chat(2_000_000);
    req["model"] = json!(MODEL);
    assert_problem(s.post("/v1/chat/completions", req).send().await.unwrap(), 422, "validation_error").await;

    let mut req = chat(4);
    req["messages"] = json!([{"role": "wizard", "content": "hi"}]);
    let body = assert_problem(s.post("/v1/chat/completions", req).send().await.unwrap(), 422, "validation_error").await;
    assert_eq!(body["error"]["param"], "messages[0].role");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_model_is_404_model_not_found_on_every_route() {
    let s = TestServer::start().await;
    let mut c = chat(4);
    c["model"] = json!("nope");
    let body = assert_problem(s.post("/v1/chat/completions", c).send().await.unwrap(), 404, "model_not_found").await;
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_problem(
        s.post("/v1/completions", json!({"model": "nope", "prompt": "x"})).send().await.unwrap(),
        404,
        "model_not_found",
    )
    .await;
    assert_problem(
        s.post("/v1/embeddings", json!({"model": "nope", "input": "x"})).send().await.unwrap(),
        404,
        "model_not_found",
    )
    .await;
    assert_problem(s.get("/v1/models/nope").send().await.unwrap(), 404, "model_not_found").await;
    let r = s
        .post("/v1/messages", json!({"model": "nope", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 404, "model_not_found").await;
    assert_eq!(body["type"], "error", "Anthropic clients read a top-level type of `error`");
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_honoured_or_generated() {
    let s = TestServer::start().await;
    let r = s.get("/v1/models").header("x-request-id", "my-trace-42").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-trace-42");
    let r = s.get("/v1/models").send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.starts_with("req_") && id.len() == 16 && id[4..].chars().all(|c| c.is_ascii_hexdigit()), "{id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_guards_everything_but_health() {
    let settings = ServerSettings { api_key: Some("s3cret-key".into()), ..ServerSettings::default() };
    let s = TestServer::with(settings, 4).await;
    let body = assert_problem(s.get("/v1/models").send().await.unwrap(), 401, "invalid_api_key").await;
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(!body.to_string().contains("s3cret"));
    assert_problem(s.get("/v1/models").bearer_auth("wrong").send().await.unwrap(), 401, "invalid_api_key").await;
    assert_problem(s.get("/admin/models").send().await.unwrap(), 401, "invalid_api_key").await;
    assert_eq!(s.get("/v1/models").bearer_auth("s3cret-key").send().await.unwrap().status(), 200);
    assert_eq!(s.get("/v1/models").header("x-api-key", "s3cret-key").send().await.unwrap().status(), 200);
    assert_eq!(s.get("/health").send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_host_and_origin_are_refused() {
    let settings =
        ServerSettings { allowed_origins: vec!["http://localhost:5173".into()], ..ServerSettings::default() };
    let s = TestServer::with(settings, 4).await;
    let r = s.get("/v1/models").header("host", "evil.example.com").send().await.unwrap();
    assert_problem(r, 403, "forbidden").await;
    let r = s.get("/v1/models").header("origin", "https://evil.example.com").send().await.unwrap();
    let body = assert_problem(r, 403, "forbidden").await;
    assert_eq!(body["error"]["type"], "permission_error");
    let r = s.get("/v1/models").header("origin", "http://localhost:5173").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "http://localhost:5173");
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/chat/completions", s.url))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert_eq!(s.get("/v1/models").header("host", "localhost:1234").send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_answers_503_with_retry_after() {
    let s = TestServer::start().await;
    s.state.start_draining();
    let r = s.post("/v1/chat/completions", chat(2)).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 503, "shutting_down").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_audited_with_their_code() {
    let s = TestServer::start().await;
    let mut c = chat(4);
    c["model"] = json!("nope");
    let r = s.post("/v1/chat/completions", c).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let e = s.audit_entry(&id).await;
    assert_eq!(e.status, mlx_manager_core::AuditStatus::Error);
    assert_eq!(e.error_type.as_deref(), Some("model_not_found"));
    assert_eq!(e.model, "nope");
    assert_eq!(e.endpoint, "/v1/chat/completions");
}

/// A model of a family the engine does not run is the client's 422 on both APIs, naming its
/// `model_type` and the families that do run, before anything is loaded or evicted; the model
/// list says so before anyone asks for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_model_of_an_unsupported_family_is_a_422_that_names_it_and_loads_nothing() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("falcon-tiny");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("config.json"), r#"{"model_type":"falcon_mamba","vocab_size":64}"#).unwrap();
    server.state.registry.insert("falcon-tiny", &folder);
    // The tiny model is loaded first: the refused request must not evict it.
    let ok = server.post("/v1/chat/completions", chat(1)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let before = server.state.engine.status().await.unwrap().loaded;

    let body = json!({"model": "falcon-tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let r = server.post("/v1/chat/completions", body.clone()).send().await.unwrap();
    let problem = assert_problem(r, 422, "unsupported_architecture").await;
    assert_eq!(problem["model_type"], "falcon_mamba");
    assert_eq!(problem["error"]["param"], "model");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`falcon_mamba`") && detail.contains("gemma3_text") && detail.contains("phi3"), "{detail}");
    assert!(problem["supported_model_types"].as_array().unwrap().iter().any(|t| t == "llama"));
    let r = server.post("/v1/messages", body).send().await.unwrap();
    let problem = assert_problem(r, 422, "unsupported_architecture").await;
    assert_eq!(problem["error"]["type"], "invalid_request_error");
    let r = server.post("/admin/models/falcon-tiny/preload", json!({})).send().await.unwrap();
    assert_problem(r, 422, "unsupported_architecture").await;

    let after = server.state.engine.status().await.unwrap().loaded;
    assert_eq!(
        after.iter().map(|m| &m.id).collect::<Vec<_>>(),
        before.iter().map(|m| &m.id).collect::<Vec<_>>(),
        "a refused request changed what is loaded"
    );
    let models: Value = server.get("/admin/models").send().await.unwrap().json().await.unwrap();
    let row = |id: &str| models["available"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(
        (row("falcon-tiny")["supported"].clone(), row("falcon-tiny")["model_type"].clone()),
        (json!(false), json!("falcon_mamba"))
    );
    assert_eq!((row(MODEL)["supported"].clone(), row(MODEL)["family"].clone()), (json!(true), json!("qwen2")));
}

/// `chat_template_kwargs` must be an object that does not set what the request itself sets, and
/// `reasoning_effort` one of the three levels; each error names the field.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_chat_template_kwargs_and_reasoning_effort_are_422_naming_the_field() {
    let s = TestServer::start().await;
    let cases = [
        (json!({"chat_template_kwargs": "enable_thinking=false"}), "chat_template_kwargs"),
        (json!({"chat_template_kwargs": [["enable_thinking", false]]}), "chat_template_kwargs"),
        (json!({"chat_template_kwargs": true}), "chat_template_kwargs"),
        (json!({"chat_template_kwargs": {"messages": []}}), "chat_template_kwargs.messages"),
        (json!({"chat_template_kwargs": {"tools": []}}), "chat_template_kwargs.tools"),
        (
            json!({"chat_template_kwargs": {"add_generation_prompt": false}}),
            "chat_template_kwargs.add_generation_prompt",
        ),
        (json!({"chat_template_kwargs": {"documents": []}}), "chat_template_kwargs.documents"),
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
        (json!({"reasoning_effort": "HIGH"}), "reasoning_effort"),
        (json!({"reasoning_effort": 3}), "reasoning_effort"),
        (json!({"reasoning_effort": {"effort": "low"}}), "reasoning_effort"),
    ];
    for (extra, field) in cases {
        let mut req = chat(1);
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        let r = s.post("/v1/chat/completions", req).send().await.unwrap();
        let body = assert_problem(r, 422, "validation_error").await;
        assert_eq!(body["error"]["param"], field, "{extra}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{extra}: {body}");
    }
    // Both reserved keys are named.
    let mut req = chat(1);
    req["chat_template_kwargs"] = json!({"enable_thinking": false, "tools": [], "messages": []});
    let body = assert_problem(s.post("/v1/chat/completions", req).send().await.unwrap(), 422, "validation_error").await;
    let mut fields: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["chat_template_kwargs.messages", "chat_template_kwargs.tools"], "{body}");
    // The Anthropic route has no such parameters.
    let body = json!({"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
        "chat_template_kwargs": {"enable_thinking": false}});
    let problem = assert_problem(s.post("/v1/messages", body).send().await.unwrap(), 422, "validation_error").await;
    assert_eq!(problem["errors"][0]["field"], "chat_template_kwargs");
}
