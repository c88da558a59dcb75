//! A real server (real engine, generated tiny model) on 127.0.0.1:0 per test, sharing one engine
//! thread per test binary.
#![allow(dead_code)]

pub mod grammar_models;
pub mod tool_models;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mlx_manager_core::{AuditEntry, AuditSink};
use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_engine::{Engine, EngineHandle};
use mlx_manager_server::{AppState, ServerSettings};

pub const MODEL: &str = "tiny";

fn engine() -> EngineHandle {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::start().expect("engine")).handle()
}

/// The tiny model folder (a context long enough for timeout tests).
fn model_dir() -> std::path::PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = TinySpec { max_position_embeddings: 1_000_000, ..TinySpec::new(TinyFamily::Qwen2) };
        write_tiny_model(&dir.path().join(MODEL), &spec).expect("model");
        dir
    });
    dir.path().join(MODEL)
}

/// Audit entries the server handed over.
#[derive(Default)]
pub struct Recorded(pub Mutex<Vec<AuditEntry>>);

impl AuditSink for Recorded {
    fn record(&self, entry: AuditEntry) {
        self.0.lock().unwrap().push(entry);
    }
}

pub struct TestServer {
    pub url: String,
    pub state: Arc<AppState>,
    pub audit: Arc<Recorded>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub client: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(ServerSettings::default(), 8).await
    }

    pub async fn with(settings: ServerSettings, max_concurrent: usize) -> TestServer {
        Self::build(settings, max_concurrent, None).await
    }

    /// A server whose audit entries go to a real audit store (also queryable over HTTP).
    pub async fn with_store(store: mlx_manager_store::Store) -> TestServer {
        Self::build(ServerSettings::default(), 8, Some(store)).await
    }

    async fn build(
        settings: ServerSettings,
        max_concurrent: usize,
        store: Option<mlx_manager_store::Store>,
    ) -> TestServer {
        let audit = Arc::new(Recorded::default());
        let sink: Arc<dyn AuditSink> = match &store {
            Some(store) => Arc::new(store.clone()),
            None => audit.clone(),
        };
        let state = AppState::new(engine(), settings, sink, max_concurrent);
        if let Some(store) = store {
            let _ = state.audit_log.set(store);
        }
        state.registry.insert(MODEL, model_dir());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            mlx_manager_server::serve(
                listener,
                serve_state,
                async move {
                    let _ = stopped.await;
                },
                Duration::from_secs(5),
            )
            .await
            .expect("serve");
        });
        TestServer { url, state, audit, stop: Some(stop), client: reqwest::Client::new() }
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url)).json(&body)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    /// Waits until the engine runs no generation (true) or 5 s pass (false).
    pub async fn engine_idle(&self) -> bool {
        for _ in 0..500 {
            if self.state.engine.status().await.unwrap().running == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Waits for the audit entry of `request_id`.
    pub async fn audit_entry(&self, request_id: &str) -> AuditEntry {
        for _ in 0..500 {
            if let Some(e) = self.audit.0.lock().unwrap().iter().find(|e| e.request_id == request_id) {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no audit entry for {request_id}");
    }

    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn chat(max_tokens: u64) -> serde_json::Value {
    serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": max_tokens, "temperature": 0})
}

/// Status, headers and JSON body of a response.
pub async fn problem(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, headers, body)
}

/// Asserts the common envelope members; returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    let path = response.url().path().to_string();
    let (got, headers, body) = problem(response).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["instance"], path);
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(body["request_id"], id);
    assert!(body["title"].is_string() && body["detail"].is_string());
    assert!(body["error"]["message"].is_string());
    body
}
