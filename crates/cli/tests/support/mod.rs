//! Helpers of the routing tests: `mlx-manager serve` processes with their logs captured, upstreams
//! that fail in each way a real one can (500, silence, nothing listening), and an admin/API client.

#![allow(dead_code)] // each test binary uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mlx_manager_engine::tiny::{
    write_scripted_model, write_tiny_model, TinyFamily, TinySpec, AGENT_SCRIPT, THINKER_SCRIPT,
};
use serde_json::{json, Value};

pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tiny(dir: &Path, name: &str, family: TinyFamily) -> PathBuf {
    let path = dir.join(name);
    if !path.exists() {
        // A long context, so the benchmark's long prompt fits.
        write_tiny_model(&path, &TinySpec { max_position_embeddings: 32_768, ..TinySpec::new(family) }).unwrap();
    }
    path
}

/// The scripted tool-calling and reasoning models of `check_tools.py`, under the real Qwen2.5
/// and Qwen3 templates.
pub fn scripted_models(dir: &Path) -> [PathBuf; 2] {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/templates");
    let agent = dir.join("agent");
    let template = std::fs::read_to_string(templates.join("Qwen-Qwen2.5-7B-Instruct.jinja")).unwrap();
    write_scripted_model(&agent, AGENT_SCRIPT, &template).unwrap();
    let thinker = dir.join("thinker");
    let template = std::fs::read_to_string(templates.join("Qwen-Qwen3-0.6B.jinja")).unwrap();
    write_scripted_model(&thinker, THINKER_SCRIPT, &template).unwrap();
    [agent, thinker]
}

/// A random-weight tiny Qwen2 model under Qwen2.5's real (Hermes tool-call) template: it writes
/// JSON or a tool call only when decoding is constrained.
pub fn random_hermes_model(dir: &Path) -> PathBuf {
    let path = dir.join("random-hermes");
    write_tiny_model(&path, &TinySpec { max_position_embeddings: 32_768, ..TinySpec::new(TinyFamily::Qwen2) }).unwrap();
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/templates/Qwen-Qwen2.5-7B-Instruct.jinja");
    let config = path.join("tokenizer_config.json");
    let mut tc: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    tc["chat_template"] = std::fs::read_to_string(template).unwrap().into();
    std::fs::write(&config, tc.to_string()).unwrap();
    path
}

pub fn serve(data_dir: &Path, model: &Path, extra: &[&str]) -> Server {
    std::fs::create_dir_all(data_dir).unwrap();
    let log = data_dir.join(format!("stderr-{}.log", std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlx-manager"))
        .args(["serve", "--port", "0", "--no-hf-cache", "--key-storage", "file", "--data-dir"])
        .arg(data_dir)
        .arg("--model")
        .arg(model)
        .args(extra)
        .env("MLX_MANAGER_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line {line:?}")).to_string();
    Server { child, url, log }
}

/// An OpenAI-style upstream that always fails with 500 (a local server speaking the protocol).
pub fn failing_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = r#"{"error":{"message":"upstream exploded","type":"server_error"}}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// An upstream that accepts connections and never answers.
pub fn silent_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    url
}

/// A loopback URL nothing listens on.
pub fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    url
}

pub fn python() -> PathBuf {
    let venv = std::env::var_os("MLX_MANAGER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlx-manager/venv"));
    venv.join("bin/python3")
}

pub struct Api {
    pub client: reqwest::Client,
    pub url: String,
    /// Every error body seen, to check no key leaked into one.
    pub error_bodies: Vec<String>,
}

impl Api {
    /// A client for the server at `url`.
    pub fn new(url: &str) -> Api {
        Api { client: reqwest::Client::new(), url: url.to_string(), error_bodies: Vec::new() }
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.client.get(format!("{}{path}", self.url)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let text = r.text().await.unwrap();
        if status >= 400 {
            self.error_bodies.push(text.clone());
        }
        (status, headers, text)
    }

    pub async fn post(&mut self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn ok(&mut self, path: &str, body: Value) -> Value {
        let (status, _, text) = self.post(path, body).await;
        assert!(status == 200 || status == 201, "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }
}

pub fn chat(model: &str, stream: bool) -> Value {
    let mut b = json!({"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0});
    if stream {
        b["stream"] = json!(true);
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

pub fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 8, "temperature": 0, "stream": stream,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]})
}

/// `(event name, data)` of each server-sent event.
pub fn events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                    data.push_str(v);
                }
            }
            (name, data)
        })
        .collect()
}

pub fn backend(headers: &reqwest::header::HeaderMap) -> (String, bool) {
    let name = headers.get("x-mlx-backend").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (name, headers.get("x-mlx-fallback").is_some_and(|v| v == "true"))
}
