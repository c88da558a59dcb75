//! One audit entry per request, whatever its outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a request was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendType {
    /// The local MLX engine.
    Local,
    /// OpenAI's API.
    Openai,
    /// Anthropic's API.
    Anthropic,
    /// Any OpenAI-compatible server.
    OpenaiCompatible,
    /// Any Anthropic-compatible server.
    AnthropicCompatible,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    /// Answered in full.
    Success,
    /// Failed (any error response or mid-stream error).
    Error,
    /// The endpoint's timeout expired.
    Timeout,
    /// The client went away before the end.
    Cancelled,
}

/// The record of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the request arrived (UTC).
    pub timestamp: DateTime<Utc>,
    /// `req_…` id, also sent back as `X-Request-ID`.
    pub request_id: String,
    /// The model the client asked for (empty when the request named none).
    pub model: String,
    /// Which backend served it.
    pub backend_type: BackendType,
    /// Request path, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    /// Wall time from arrival to the last byte, in milliseconds.
    pub duration_ms: u64,
    /// Outcome.
    pub status: AuditStatus,
    /// Prompt tokens, when known.
    pub prompt_tokens: u32,
    /// Generated tokens, when known.
    pub completion_tokens: u32,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u32,
    /// The error code (`model_not_found`, `timeout`, …) when it failed.
    pub error_type: Option<String>,
    /// The client-visible error message when it failed (never a secret or internal detail).
    pub error_message: Option<String>,
}

/// Where finished requests are recorded. `record` must return at once: it is called on the
/// request path and must never wait on storage.
pub trait AuditSink: Send + Sync + 'static {
    /// Hands over one entry.
    fn record(&self, entry: AuditEntry);
}

/// A sink that keeps nothing (for embedding the server where no audit log is wanted).
pub struct NullAuditSink;

impl AuditSink for NullAuditSink {
    fn record(&self, _entry: AuditEntry) {}
}
