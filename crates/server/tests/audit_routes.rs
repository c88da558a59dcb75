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
    // Reading the audit log is not itself audited.
    assert_eq!(
        s.get("/admin/audit-logs").send().await.unwrap().json::<Value>().await.unwrap()["entries"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
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
