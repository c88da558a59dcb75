//! The audit log over HTTP: every request recorded in the real store, then listed, counted and
//! exported with filters; bad filter values are 422 problem documents.

mod common;

use common::*;
use mlx_manager_store::{Store, CSV_COLUMNS};
use serde_json::{json, Value};

async fn server_with_traffic() -> (tempfile::TempDir, TestServer, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("audit.db"), 30).unwrap();
    let s = TestServer::with_store(store.clone()).await;
    for _ in 0..3 {
        assert_eq!(s.post("/v1/chat/completions", chat(2)).send().await.unwrap().status(), 200);
    }
    let mut bad = chat(2);
    bad["model"] = json!("missing-model");
    assert_eq!(s.post("/v1/chat/completions", bad).send().await.unwrap().status(), 404);
    assert_eq!(s.post("/v1/embeddings", json!({"model": MODEL, "input": "x"})).send().await.unwrap().status(), 200);
    // Entries are recorded when each request's last part is gone; wait for all five.
    for _ in 0..200 {
        store.flush().await.unwrap();
        if store.stats(Default::default()).await.unwrap().total >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    (dir, s, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_listed_counted_and_exported_with_filters() {
    let (_dir, s, _store) = server_with_traffic().await;
    let page: Value = s.get("/admin/audit-logs").send().await.unwrap().json().await.unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "{page}");
    assert_eq!(entries[0]["endpoint"], "/v1/embeddings", "newest first");
    let errors: Value = s.get("/admin/audit-logs?status=error").send().await.unwrap().json().await.unwrap();
    assert_eq!(errors["entries"].as_array().unwrap().len(), 1);
    assert_eq!(errors["entries"][0]["model"], "missing-model");
    assert_eq!(errors["entries"][0]["error_type"], "model_not_found");
    let paged: Value = s.get("/admin/audit-logs?limit=2").send().await.unwrap().json().await.unwrap();
    let cursor = paged["next_cursor"].as_str().unwrap();
    let next: Value =
        s.get(&format!("/admin/audit-logs?limit=2&cursor={cursor}")).send().await.unwrap().json().await.unwrap();
    assert_ne!(next["entries"][0]["request_id"], paged["entries"][0]["request_id"]);

    let stats: Value =
        s.get(&format!("/admin/audit-logs/stats?model={MODEL}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["total_requests"], 4, "the original product's name for the same count");
    assert_eq!(stats["by_status"]["success"], 4);
    assert_eq!(stats["completion_tokens"], 6);

    let r = s.get("/admin/audit-logs/export?format=csv&endpoint=/v1/chat/completions").send().await.unwrap();
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), CSV_COLUMNS);
    assert_eq!(reader.records().count(), 4);
    let jsonl = s.get("/admin/audit-logs/export?format=jsonl").send().await.unwrap().text().await.unwrap();
    assert_eq!(jsonl.lines().count(), 5);
    // Every row says why generation stopped and how many tool calls it made (an embedding: none).
    let embedding: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(embedding["endpoint"], "/v1/embeddings");
    assert_eq!((&embedding["finish_reason"], &embedding["tool_calls"]), (&Value::Null, &json!(0)));
    let none: Value =
        s.get("/admin/audit-logs?finish_reason=no_such_reason").send().await.unwrap().json().await.unwrap();
    assert_eq!(none["entries"], json!([]), "finish_reason is a filter");
    // Reading the audit log is not itself audited.
    assert_eq!(
        s.get("/admin/audit-logs").send().await.unwrap().json::<Value>().await.unwrap()["entries"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

/// The ids of the audit log's rows, newest first.
async fn audited_ids(s: &TestServer, store: &Store) -> Vec<String> {
    store.flush().await.unwrap();
    let page: Value = s.get("/admin/audit-logs?limit=1000").send().await.unwrap().json().await.unwrap();
    page["entries"].as_array().unwrap().iter().map(|e| e["request_id"].as_str().unwrap().to_string()).collect()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_model_requests_and_model_loads_are_audited() {
    let (_dir, s, store) = server_with_traffic().await;
    let before = audited_ids(&s, &store).await;
    assert_eq!(before.len(), 5);
    // Reads, settings, provider edits, unknown routes and wrong methods: none is a model request.
    let mut unaudited = Vec::new();
    for path in ["/admin/models", "/v1/models", "/health", "/admin/settings/timeouts", "/admin/audit-logs/stats"] {
        let r = s.get(path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        unaudited.push(request_id(&r));
    }
    let timeouts = json!({"chat_seconds": 900, "completions_seconds": 600, "embeddings_seconds": 120});
    let r = s.client.put(format!("{}/admin/settings/timeouts", s.url)).json(&timeouts).send().await.unwrap();
    assert_eq!(r.status(), 200);
    unaudited.push(request_id(&r));
    for r in [
        s.get("/v1/chat/completions").send().await.unwrap(),
        s.post("/v1/chat/completion", chat(2)).send().await.unwrap(),
        s.post("/admin/models/tiny/unknown-action", json!({})).send().await.unwrap(),
    ] {
        assert!(r.status().is_client_error(), "{}", r.status());
        unaudited.push(request_id(&r));
    }
    // Loading and unloading a model change what it does: audited under its id.
    let preload = s.post(&format!("/admin/models/{MODEL}/preload"), json!({})).send().await.unwrap();
    assert_eq!(preload.status(), 200);
    let unload = s.client.delete(format!("{}/admin/models/{MODEL}", s.url)).send().await.unwrap();
    assert_eq!(unload.status(), 200);
    let (preload, unload) = (request_id(&preload), request_id(&unload));
    // Entries are written when a request's last part is gone: wait for the two.
    let mut after = audited_ids(&s, &store).await;
    for _ in 0..200 {
        if after.len() >= 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        after = audited_ids(&s, &store).await;
    }
    assert_eq!(after[2..], before[..]);
    for id in &unaudited {
        assert!(!after.contains(id), "{id} was audited");
    }
    let page: Value = s.get("/admin/audit-logs?limit=2").send().await.unwrap().json().await.unwrap();
    let entry = |id: &str| page["entries"].as_array().unwrap().iter().find(|e| e["request_id"] == id).cloned();
    for (id, endpoint) in
        [(preload, format!("/admin/models/{MODEL}/preload")), (unload, format!("/admin/models/{MODEL}"))]
    {
        let e = entry(&id).unwrap_or_else(|| panic!("{endpoint} not audited: {page}"));
        assert_eq!((&e["model"], &e["endpoint"], &e["status"]), (&json!(MODEL), &json!(endpoint), &json!("success")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_filter_values_are_422() {
    let (_dir, s, _store) = server_with_traffic().await;
    for (query, field) in [
        ("status=exploded", "status"),
        ("backend_type=carrier-pigeon", "backend_type"),
        ("start_time=yesterday", "start_time"),
        ("start_time=2026-11-02T00:00:00Z&end_time=2026-11-01T00:00:00Z", "end_time"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("cursor=garbage", "cursor"),
        ("colour=blue", "colour"),
    ] {
        let body =
            assert_problem(s.get(&format!("/admin/audit-logs?{query}")).send().await.unwrap(), 422, "validation_error")
                .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
    assert_problem(s.get("/admin/audit-logs/stats?status=nope").send().await.unwrap(), 422, "validation_error").await;
    assert_problem(s.get("/admin/audit-logs/export?format=xml").send().await.unwrap(), 422, "validation_error").await;
}
