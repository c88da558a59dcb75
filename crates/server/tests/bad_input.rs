//! Hundreds of malformed, truncated, oversized, wrong-typed and hostile requests: each gets a
//! typed problem document (never a 500, never a hang), and the server still answers a good
//! request afterwards.

mod common;

use common::*;
use mlx_manager_core::Timeouts;
use mlx_manager_server::ServerSettings;
use serde_json::{json, Value};

fn valid_bodies() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}),
        ),
        ("/v1/completions", json!({"model": MODEL, "prompt": "hi", "max_tokens": 2})),
        ("/v1/embeddings", json!({"model": MODEL, "input": "hi"})),
        ("/v1/messages", json!({"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})),
    ]
}

fn weird_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(-1e300),
        json!(4_000_000_000_000u64),
        json!("text"),
        json!(""),
        json!("\u{0000}\u{202e}evil"),
        json!([]),
        json!({}),
        json!([[[[[]]]]]),
        json!({"role": "user"}),
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]),
    ]
}

struct Checker<'a> {
    server: &'a TestServer,
    /// A connection per request: after an early 413 the server closes the connection while the
    /// client may still be writing, and a pooled client would reuse the dead connection.
    client: reqwest::Client,
    sent: usize,
}

impl Checker<'_> {
    async fn send(&mut self, request: reqwest::RequestBuilder, allowed: &[u16], what: &str) {
        let response = request.send().await.unwrap_or_else(|e| panic!("{what}: no response: {e}"));
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body = response.text().await.unwrap_or_default();
        assert!(allowed.contains(&status), "{what}: status {status}, allowed {allowed:?}: {body}");
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "{what}");
            let doc: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: body is not JSON: {body}"));
            assert_eq!(doc["status"], status, "{what}");
            assert!(doc["code"].is_string() && doc["error"]["message"].is_string(), "{what}: {doc}");
        }
        self.sent += 1;
    }

    fn raw(&self, path: &str, bytes: Vec<u8>) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.server.url)).header("content-type", "application/json").body(bytes)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_typed_errors_and_the_server_survives() {
    let settings = ServerSettings {
        max_body_bytes: 64 << 10,
        timeouts: Timeouts { chat_seconds: 2, completions_seconds: 2, embeddings_seconds: 2 },
        ..ServerSettings::default()
    };
    let server = TestServer::with(settings, 8).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut c = Checker { server: &server, client: client.clone(), sent: 0 };

    for (path, body) in valid_bodies() {
        let text = body.to_string();
        // Every truncation of a valid body.
        for cut in 0..text.len() {
            c.send(c.raw(path, text.as_bytes()[..cut].to_vec()), &[400], &format!("{path} truncated at {cut}")).await;
        }
        // Every field replaced by values of the wrong type or range.
        for field in body.as_object().unwrap().keys() {
            for value in weird_values() {
                let mut b = body.clone();
                b[field.as_str()] = value.clone();
                c.send(
                    c.raw(path, b.to_string().into_bytes()),
                    &[200, 404, 408, 422],
                    &format!("{path} {field}={value}"),
                )
                .await;
            }
        }
        // Unknown and unsupported parameters.
        for extra in ["tools", "response_format", "logit_bias", "frobnicate"] {
            let mut b = body.clone();
            b[extra] = json!({"x": 1});
            c.send(c.raw(path, b.to_string().into_bytes()), &[422], &format!("{path} +{extra}")).await;
        }
        // Deep nesting, invalid UTF-8, oversized, wrong content type.
        let deep = format!("{{\"model\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        c.send(c.raw(path, deep.into_bytes()), &[400, 413], &format!("{path} deep")).await;
        let mut bad_utf8 = text.clone().into_bytes();
        bad_utf8.insert(text.len() / 2, 0xC3);
        bad_utf8.insert(text.len() / 2 + 1, 0x28);
        c.send(c.raw(path, bad_utf8), &[400], &format!("{path} invalid utf-8")).await;
        let mut huge = body.clone();
        huge["model"] = json!("m".repeat(70 << 10));
        c.send(c.raw(path, huge.to_string().into_bytes()), &[413], &format!("{path} oversized")).await;
        c.send(
            server
                .client
                .post(format!("{}{path}", server.url))
                .header("content-type", "application/xml")
                .body(text.clone()),
            &[415],
            "xml",
        )
        .await;
        c.send(client.post(format!("{}{path}", server.url)).body(text.clone()), &[415], "no content type").await;
        // Hostile Host and Origin.
        c.send(c.raw(path, text.clone().into_bytes()).header("host", "attacker.example"), &[403], "foreign host").await;
        c.send(
            c.raw(path, text.clone().into_bytes()).header("origin", "https://attacker.example"),
            &[403],
            "foreign origin",
        )
        .await;
    }
    // Huge max_tokens and negative temperature are range errors.
    let mut b = valid_bodies()[0].1.clone();
    b["max_tokens"] = json!(u32::MAX);
    c.send(c.raw("/v1/chat/completions", b.to_string().into_bytes()), &[422], "huge max_tokens").await;
    b["max_tokens"] = json!(2);
    b["temperature"] = json!(-0.5);
    c.send(c.raw("/v1/chat/completions", b.to_string().into_bytes()), &[422], "negative temperature").await;
    assert!(c.sent > 300, "only {} requests sent", c.sent);

    // Still healthy.
    let r = server.post("/v1/chat/completions", chat(3)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 3);
}
