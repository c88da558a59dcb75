//! Observability of a real `mlx-manager serve`: Prometheus `/metrics` (off by default, behind the
//! API key, counters that move with traffic), one OTLP span per request with its request id
//! (received by a local OTLP/HTTP collector stub), and JSON log lines in the data dir.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlx_manager_engine::tiny::TinyFamily;
use serde_json::json;
use support::*;

/// The value of the first sample line starting with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_with_traffic_and_stay_behind_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "tiny-metrics", TinyFamily::Qwen2);
    let off = serve(&dir.path().join("off"), &model, &[]);
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{}/metrics", off.url)).send().await.unwrap().status(), 404, "off by default");
    drop(off);

    let server = serve(&dir.path().join("on"), &model, &["--metrics", "--api-key", "metrics-key-123"]);
    let url = format!("{}/metrics", server.url);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401, "behind the API key");
    let body = json!({"model": "tiny-metrics", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5});
    for _ in 0..2 {
        let r = client
            .post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth("metrics-key-123")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let missing = json!({"model": "nope", "messages": [{"role": "user", "content": "Hi"}]});
    client
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth("metrics-key-123")
        .json(&missing)
        .send()
        .await
        .unwrap();

    let r = client.get(&url).bearer_auth("metrics-key-123").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().contains("openmetrics"));
    let text = r.text().await.unwrap();
    let ok = r#"mlx_manager_request_duration_seconds_count{endpoint="/v1/chat/completions",status="success",backend="local"}"#;
    assert_eq!(sample(&text, ok), Some(2.0), "{text}");
    let failed =
        r#"mlx_manager_request_duration_seconds_count{endpoint="/v1/chat/completions",status="error",backend="local"}"#;
    assert_eq!(sample(&text, failed), Some(1.0));
    assert_eq!(sample(&text, r#"mlx_manager_tokens_total{direction="out"}"#), Some(10.0));
    assert!(sample(&text, r#"mlx_manager_tokens_total{direction="in"}"#).unwrap() > 0.0);
    assert_eq!(sample(&text, r#"mlx_manager_pool_requests_total{result="miss"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"mlx_manager_pool_requests_total{result="hit"}"#), Some(1.0));
    assert_eq!(sample(&text, "mlx_manager_model_load_duration_seconds_count"), Some(1.0));
    assert!(sample(&text, r#"mlx_manager_model_memory_bytes{model="tiny-metrics"}"#).unwrap() > 0.0);
    assert_eq!(sample(&text, "mlx_manager_active_requests"), Some(0.0));
    assert_eq!(sample(&text, "mlx_manager_audit_dropped"), Some(0.0));
    assert!(sample(&text, "mlx_manager_audit_queue_depth").is_some());
    assert!(text.contains("le=\"0.005\"") && text.contains("le=\"40.96\""), "5 ms … 60 s buckets");
    assert!(!text.contains("req_"), "no request ids in labels");
    assert!(!text.contains(r#"model="nope""#), "no unregistered model names in labels");
    assert_eq!(sample(&text, r#"mlx_manager_engine_batched_total{kind="tokens"}"#), Some(0.0), "one at a time so far");

    // Four requests at once decode together.
    let long = json!({"model": "tiny-metrics", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64});
    let together: Vec<_> = (0..4)
        .map(|_| {
            let (client, chat) = (client.clone(), format!("{}/v1/chat/completions", server.url));
            let long = long.clone();
            tokio::spawn(async move {
                let r = client.post(chat).bearer_auth("metrics-key-123").json(&long).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            })
        })
        .collect();
    for t in together {
        t.await.unwrap();
    }
    let text = client.get(&url).bearer_auth("metrics-key-123").send().await.unwrap().text().await.unwrap();
    assert!(sample(&text, r#"mlx_manager_engine_batched_total{kind="tokens"}"#).unwrap() > 0.0, "{text}");
}

/// A minimal OTLP/HTTP collector: stores every body posted to /v1/traces, answers `{}`.
fn collector() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut length, mut path) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if path.is_empty() {
                    path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if path == "/v1/traces" {
                seen.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}");
        }
    });
    (url, bodies)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_is_a_span_at_the_otlp_collector_and_a_json_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "tiny-otlp", TinyFamily::Llama);
    let (endpoint, bodies) = collector();
    let data = dir.path().join("data");
    let mut server = serve(&data, &model, &["--otlp-endpoint", &endpoint]);
    let body = json!({"model": "tiny-otlp", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.url))
        .header("x-request-id", "req_0tel5pan0001")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Shutting down flushes the exporter.
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let received = bodies.lock().unwrap().join("\n");
    assert!(received.contains("req_0tel5pan0001"), "no span with the request id reached the collector: {received}");
    let spans: serde_json::Value =
        serde_json::from_str(bodies.lock().unwrap().iter().find(|b| b.contains("req_0tel5pan0001")).unwrap()).unwrap();
    let span = spans["resourceSpans"][0]["scopeSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["spans"].as_array().unwrap())
        .find(|s| s["name"] == "request")
        .expect("a span named request");
    let attr = |key: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"]["stringValue"].clone())
    };
    assert_eq!(attr("request_id"), Some(json!("req_0tel5pan0001")));
    assert_eq!(attr("model"), Some(json!("tiny-otlp")));
    assert_eq!(attr("endpoint"), Some(json!("/v1/chat/completions")));
    assert_eq!(attr("status"), Some(json!("success")));

    // The JSON log file in the data dir has the request's line with its id.
    let logs = std::fs::read_dir(data.join("logs")).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    let line = text.lines().find(|l| l.contains("req_0tel5pan0001")).expect("a log line for the request");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["span"]["request_id"], "req_0tel5pan0001");
}
