//! `/admin/library/*` against a fake Hub on 127.0.0.1: search with the engine's supported
//! flag, downloads with SSE progress that register the model at once (it then answers a chat
//! request), pause/resume/cancel, errors in the problem envelope, and delete (409 while loaded,
//! `force` unloads).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestServer;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_library::{DownloadOptions, HubConfig, Library, RetryPolicy};
use mlx_manager_test_hub::FakeHub;
use serde_json::{json, Value};

const REPO: &str = "tiny-org/tiny-llama";

struct Setup {
    hub: FakeHub,
    cache: tempfile::TempDir,
    server: TestServer,
    _models: tempfile::TempDir,
}

fn options() -> DownloadOptions {
    DownloadOptions {
        retry: RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            read_timeout: Duration::from_secs(30),
        },
        progress_interval: Duration::from_millis(10),
        ..DownloadOptions::default()
    }
}

async fn setup_with(options: DownloadOptions) -> Setup {
    let hub = FakeHub::start();
    let models = tempfile::tempdir().unwrap();
    let llama = models.path().join("llama");
    write_tiny_model(&llama, &TinySpec::new(TinyFamily::Llama)).unwrap();
    hub.add_repo(REPO, &llama);
    hub.set_meta(REPO, 10, 1, "2026-01-01T00:00:00.000Z", "mlx");
    hub.add_files(
        "tiny-org/tiny-mamba",
        vec![("config.json".into(), br#"{"model_type": "mamba"}"#.to_vec()), ("model.safetensors".into(), vec![0; 64])],
    );
    let cache = tempfile::tempdir().unwrap();
    let config = HubConfig { endpoint: hub.url().into(), token: None, offline: false, cache_dir: cache.path().into() };
    let server = TestServer::start().await;
    server.state.attach_library(Library::new(config, options).unwrap());
    Setup { hub, cache, server, _models: models }
}

async fn setup() -> Setup {
    setup_with(options()).await
}

impl Setup {
    fn repo_dir(&self) -> PathBuf {
        self.cache.path().join("models--tiny-org--tiny-llama")
    }

    async fn json(&self, response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn start(&self, body: Value) -> (u16, Value) {
        self.json(self.server.post("/admin/library/downloads", body).send().await.unwrap()).await
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self.server.client.request(method, format!("{}{path}", self.server.url)).send().await.unwrap();
        self.json(response).await
    }

    /// The progress stream until it ends (or `until` says stop).
    async fn progress(&self, id: &str, until: impl Fn(&Value) -> bool) -> Vec<Value> {
        let response = self.server.get(&format!("/admin/library/downloads/{id}/progress")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut stream = response.bytes_stream().eventsource();
        let mut events = Vec::new();
        let read = async {
            while let Some(event) = stream.next().await {
                let event = event.expect("valid SSE");
                assert_eq!(event.event, "progress");
                let status: Value = serde_json::from_str(&event.data).unwrap();
                let stop = until(&status);
                events.push(status);
                if stop {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("progress stream stalled");
        events
    }
}

fn problem(status: u16, body: &Value, code: &str) {
    assert_eq!((status, body["code"].as_str()), (status, Some(code)), "{body}");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().ends_with(code));
    assert_eq!(body["error"]["code"], code);
}

async fn chat(s: &Setup, model: &str) -> (u16, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
    s.json(s.server.post("/v1/chat/completions", body).send().await.unwrap()).await
}

async fn model_ids(s: &Setup) -> Vec<String> {
    let (_, list) = s.json(s.server.get("/v1/models").send().await.unwrap()).await;
    list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_streams_progress_and_the_model_answers_at_once() {
    let s = setup().await;
    assert!(!model_ids(&s).await.contains(&REPO.to_string()));
    let (status, started) = s.start(json!({"repo": REPO})).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["repo"], REPO);
    assert_eq!(started["revision"], "main");
    assert_eq!(started["commit"], s.hub.commit(REPO));
    let id = started["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("dl_"));

    let events = s.progress(&id, |_| false).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "completed", "{last}");
    assert_eq!(last["bytes_done"], last["bytes_total"]);
    assert_eq!(last["files_done"], last["files_total"]);
    let snapshot = s.repo_dir().join("snapshots").join(s.hub.commit(REPO));
    assert_eq!(last["path"], json!(snapshot));
    // Byte counts only grow.
    let done: Vec<u64> = events.iter().map(|e| e["bytes_done"].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");

    // Registered the moment it completed: listed and answering, no restart.
    assert!(model_ids(&s).await.contains(&REPO.to_string()));
    let (status, answer) = chat(&s, REPO).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 3);

    let (status, list) = s.call(reqwest::Method::GET, "/admin/library/downloads").await;
    assert_eq!(status, 200);
    assert_eq!(list["downloads"][0]["state"], "completed");
    let (status, models) = s.call(reqwest::Method::GET, "/admin/library/models").await;
    assert_eq!(status, 200);
    let model = &models["models"][0];
    assert_eq!(model["repo"], REPO);
    assert_eq!((model["model_type"].as_str(), model["supported"].as_bool()), (Some("llama"), Some(true)));
    assert_eq!((model["registered"].as_bool(), model["loaded"].as_bool()), (Some(true), Some(true)));
    assert_eq!(model["servable"], json!(snapshot));
    assert_eq!(model["size_bytes"], last["bytes_total"]);
    // A finished download's stream is its final status, then the end.
    let again = s.progress(&id, |_| false).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["state"], "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_says_what_runs_here_before_downloading() {
    let s = setup().await;
    let (status, body) = s.call(reqwest::Method::GET, "/admin/library/search?q=tiny&sort=downloads&limit=10").await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["id"], REPO, "most downloaded first");
    assert_eq!((results[0]["model_type"].as_str(), results[0]["supported"].as_bool()), (Some("llama"), Some(true)));
    assert!(results[0]["size_bytes"].as_u64().unwrap() > 500_000);
    assert_eq!(results[0]["installed"], false);
    assert_eq!((results[1]["model_type"].as_str(), results[1]["supported"].as_bool()), (Some("mamba"), Some(false)));
    assert!(body["supported_model_types"].as_array().unwrap().contains(&json!("llama")));

    let (status, body) = s.call(reqwest::Method::GET, "/admin/library/search?sort=best").await;
    problem(status, &body, "validation_error");
    assert_eq!(body["errors"][0]["field"], "sort");
    let (status, body) = s.call(reqwest::Method::GET, "/admin/library/search?limit=0").await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("limit")));
    let (status, body) = s.call(reqwest::Method::GET, "/admin/library/search?query=x").await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("query")));
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_cancel_over_http() {
    let s = setup().await;
    s.hub.stall(REPO, "model.safetensors", 128 * 1024);
    let (_, started) = s.start(json!({"repo": format!("{REPO}@main")})).await;
    let id = started["id"].as_str().unwrap().to_string();
    s.progress(&id, |st| {
        st["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "model.safetensors" && f["bytes_done"] == 128 * 1024)
    })
    .await;
    let (status, paused) = s.call(reqwest::Method::POST, &format!("/admin/library/downloads/{id}/pause")).await;
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")), "{paused}");
    s.hub.release(REPO, "model.safetensors");
    let (status, resumed) = s.call(reqwest::Method::POST, &format!("/admin/library/downloads/{id}/resume")).await;
    assert_eq!(status, 200);
    assert_ne!(resumed["state"], "paused");
    let events = s.progress(&id, |_| false).await;
    assert_eq!(events.last().unwrap()["state"], "completed");
    let weights: Vec<u64> =
        s.hub.transfers().iter().filter(|t| t.file == "model.safetensors").map(|t| t.start).collect();
    assert_eq!(weights, [0, 128 * 1024], "resumed where it paused");

    // Cancelling a finished download dismisses it; an unknown id is a 404.
    let (status, _) = s.call(reqwest::Method::DELETE, &format!("/admin/library/downloads/{id}")).await;
    assert_eq!(status, 200);
    let (status, body) = s.call(reqwest::Method::GET, &format!("/admin/library/downloads/{id}")).await;
    problem(status, &body, "not_found");
    let (status, body) = s.call(reqwest::Method::POST, "/admin/library/downloads/dl_nope/pause").await;
    problem(status, &body, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_come_in_the_problem_envelope() {
    let s = setup_with(DownloadOptions { free_space: |_| Ok(10_000), ..options() }).await;
    let (status, body) = s.start(json!({"repo": REPO})).await;
    problem(status, &body, "insufficient_disk_space");
    assert_eq!(status, 507);
    assert_eq!(body["free_bytes"], 10_000);
    assert!(body["needed_bytes"].as_u64().unwrap() > 500_000);

    s.hub.gate("tiny-org/tiny-mamba", "hf_secret");
    let (status, body) = s.start(json!({"repo": "tiny-org/tiny-mamba"})).await;
    problem(status, &body, "hub_access_denied");
    assert!(body["detail"].as_str().unwrap().contains("HF_TOKEN"), "{body}");
    let (status, body) = s.start(json!({"repo": "tiny-org/missing"})).await;
    problem(status, &body, "not_found");
    let (status, body) = s.start(json!({"repo": REPO, "revision": "v2"})).await;
    problem(status, &body, "not_found");
    assert!(body["detail"].as_str().unwrap().contains("revision `v2`"));
    let (status, body) = s.start(json!({"repo": "not a repo"})).await;
    problem(status, &body, "validation_error");
    assert_eq!(body["errors"][0]["field"], "repo");
    let (status, body) = s.start(json!({"repo": REPO, "mirror": "x"})).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("mirror")));
    let (status, body) = s.start(json!({})).await;
    problem(status, &body, "validation_error");
    let (status, body) = s.call(reqwest::Method::DELETE, "/admin/library/models/tiny-org/never-pulled").await;
    problem(status, &body, "not_found");
    assert!(s.hub.transfers().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_download_fails_and_is_never_offered() {
    let s = setup().await;
    s.hub.corrupt(REPO, "model.safetensors");
    let (_, started) = s.start(json!({"repo": REPO})).await;
    let id = started["id"].as_str().unwrap().to_string();
    let events = s.progress(&id, |st| st["state"] == "failed").await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "failed");
    assert_eq!(last["error"]["code"], "checksum_mismatch");
    assert!(!s.repo_dir().join("snapshots").exists());
    assert!(!model_ids(&s).await.contains(&REPO.to_string()));
    let (status, body) = chat(&s, REPO).await;
    problem(status, &body, "model_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_is_refused_while_loaded_unless_forced_and_frees_the_space() {
    let s = setup().await;
    let (_, started) = s.start(json!({"repo": REPO})).await;
    let id = started["id"].as_str().unwrap().to_string();
    let last = s.progress(&id, |_| false).await.pop().unwrap();
    assert_eq!(last["state"], "completed");
    assert_eq!(chat(&s, REPO).await.0, 200);

    let path = format!("/admin/library/models/{REPO}");
    let (status, body) = s.call(reqwest::Method::DELETE, &path).await;
    problem(status, &body, "conflict");
    assert!(body["detail"].as_str().unwrap().contains("force=true"));
    assert!(s.repo_dir().exists());
    let (status, body) = s.call(reqwest::Method::DELETE, &format!("{path}?force=maybe")).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("force")));

    let size = dir_size(&s.repo_dir());
    let (status, body) = s.call(reqwest::Method::DELETE, &format!("{path}?force=true")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unloaded"], true);
    assert_eq!(body["removed_repo"], true);
    assert_eq!(body["freed_bytes"], size);
    assert!(!s.repo_dir().exists(), "the files are gone");
    assert!(!model_ids(&s).await.contains(&REPO.to_string()));
    let (status, body) = chat(&s, REPO).await;
    problem(status, &body, "model_not_found");
    let pool = s.json(s.server.get("/admin/models").send().await.unwrap()).await.1;
    assert!(pool["loaded"].as_array().unwrap().iter().all(|m| m["id"] != REPO));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_library_the_routes_are_not_there() {
    let server = TestServer::start().await;
    let response = server.get("/admin/library/downloads").send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

/// Bytes of the regular files under `dir` (links not followed).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            total += dir_size(&entry.path());
        } else if kind.is_file() {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}
