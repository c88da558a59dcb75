//! One request, timed: time to first token, end-to-end latency, the gaps between tokens, and the
//! token counts the server reports in `usage`.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use mlx_manager_core::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::BenchError;

/// Which API is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

/// What every request of a run asks.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub model: String,
    pub endpoint: Endpoint,
    pub prompt: String,
    pub max_tokens: u32,
    pub stream: bool,
    /// A secret: `{:?}` of a target prints it redacted.
    pub api_key: Option<SecretString>,
    pub timeout: Duration,
    /// Start every request's prompt with its own number, so no server can answer from a cache of
    /// an earlier prompt (prefix caching) — the default; `--same-prompt` measures the cached case.
    pub vary: bool,
    /// Added to every request's number (`--first-request`), so that runs one after the other
    /// against the same server send different prompts too.
    pub first: usize,
}

/// One request's measurements.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds to the first generated text (streams only).
    pub ttft: Option<f64>,
    /// Seconds to the last byte.
    pub e2e: f64,
    /// Gaps between streamed text events, seconds.
    pub gaps: Vec<f64>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// `usage` was missing: completion tokens were counted from stream events.
    pub counted: bool,
}

impl Endpoint {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

impl Target {
    fn path(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }

    fn body(&self, i: usize) -> Value {
        let stream = self.stream && self.endpoint != Endpoint::Embeddings;
        let prompt =
            if self.vary { format!("Request {}. {}", self.first + i, self.prompt) } else { self.prompt.clone() };
        let mut body = match self.endpoint {
            Endpoint::Chat => json!({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": self.max_tokens, "temperature": 0}),
            Endpoint::Completions => {
                json!({"model": self.model, "prompt": prompt, "max_tokens": self.max_tokens, "temperature": 0})
            }
            Endpoint::Embeddings => json!({"model": self.model, "input": prompt}),
        };
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }
}

fn usage(v: &Value, s: &mut Sample) -> bool {
    let Some(u) = v.get("usage").filter(|u| u.is_object()) else { return false };
    s.prompt_tokens = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0) as u32;
    s.completion_tokens = u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0) as u32;
    true
}

/// The error message of an error body (OpenAI's `error.message`, a problem's `detail`, or the text).
fn error_text(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            let code = v.pointer("/error/code").or_else(|| v.get("code")).and_then(Value::as_str).map(str::to_string);
            let msg = v.pointer("/error/message").or_else(|| v.get("detail")).and_then(Value::as_str)?.to_string();
            Some(match code {
                Some(c) => format!("{c}: {msg}"),
                None => msg,
            })
        })
        .unwrap_or_else(|| text.chars().take(300).collect())
}

/// Sends request number `i` and measures it.
pub async fn once(client: &reqwest::Client, t: &Target, i: usize) -> Result<Sample, BenchError> {
    let started = Instant::now();
    let mut req =
        client.post(format!("{}{}", t.url.trim_end_matches('/'), t.path())).json(&t.body(i)).timeout(t.timeout);
    if let Some(key) = &t.api_key {
        req = req.bearer_auth(key.expose_secret());
    }
    let response = req.send().await.map_err(|e| BenchError::from_reqwest(&t.url, e))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(BenchError::Status { status: status.as_u16(), message: error_text(&text) });
    }
    let mut s = Sample::default();
    let stream = t.stream && t.endpoint != Endpoint::Embeddings;
    if !stream {
        let v: Value = response.json().await.map_err(|e| BenchError::from_reqwest(&t.url, e))?;
        s.e2e = started.elapsed().as_secs_f64();
        s.counted = !usage(&v, &mut s);
        return Ok(s);
    }
    let mut events = response.bytes_stream().eventsource();
    let mut last: Option<Instant> = None;
    let mut chunks = 0u32;
    let mut saw_usage = false;
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| BenchError::Stream(e.to_string()))?;
        if event.data.trim() == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(&event.data).map_err(|e| BenchError::Stream(e.to_string()))?;
        if v.get("error").is_some() {
            return Err(BenchError::Status {
                status: 200,
                message: format!("error in stream: {}", error_text(&event.data)),
            });
        }
        let text =
            v.pointer("/choices/0/delta/content").or_else(|| v.pointer("/choices/0/text")).and_then(Value::as_str);
        if text.is_some_and(|t| !t.is_empty()) {
            let now = Instant::now();
            match last {
                None => s.ttft = Some((now - started).as_secs_f64()),
                Some(prev) => s.gaps.push((now - prev).as_secs_f64()),
            }
            last = Some(now);
            chunks += 1;
        }
        saw_usage |= usage(&v, &mut s);
    }
    s.e2e = started.elapsed().as_secs_f64();
    if !saw_usage {
        s.completion_tokens = chunks;
        s.counted = true;
    }
    Ok(s)
}
