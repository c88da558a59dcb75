//! One audit entry per request, whatever its outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a request was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
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
#[cfg_attr(feature = "specta", derive(specta::Type))]
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
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditEntry {
    /// When the request arrived (UTC).
    pub timestamp: DateTime<Utc>,
    /// `req_…` id, also sent back as `X-Request-ID`.
    pub request_id: String,
    /// The model the client asked for (empty when the request named none).
    pub model: String,
    /// Which backend served it.
    pub backend_type: BackendType,
    /// The provider that served it (None: the local engine).
    #[serde(default)]
    pub backend_name: Option<String>,
    /// The rule's first backend failed and its fallback served the request.
    #[serde(default)]
    pub fallback: bool,
    /// Request path, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    /// Wall time from arrival to the last byte, in milliseconds.
    #[cfg_attr(feature = "specta", specta(type = u32))]
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
    /// Why generation stopped, in the API's own spelling (OpenAI `stop`, `length`, `tool_calls`;
    /// Anthropic `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`), so a truncated answer or
    /// a tool-call turn can be told from a complete one. None when the request produced no
    /// completion (errors, embeddings, admin calls).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Tool calls the model made in its answer (0 when it made none).
    #[serde(default)]
    pub tool_calls: u32,
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

impl BackendType {
    /// The stored/serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendType::Local => "local",
            BackendType::Openai => "openai",
            BackendType::Anthropic => "anthropic",
            BackendType::OpenaiCompatible => "openai_compatible",
            BackendType::AnthropicCompatible => "anthropic_compatible",
        }
    }

    /// Parses a stored/serialised name.
    pub fn parse(s: &str) -> Option<BackendType> {
        [
            BackendType::Local,
            BackendType::Openai,
            BackendType::Anthropic,
            BackendType::OpenaiCompatible,
            BackendType::AnthropicCompatible,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

impl AuditStatus {
    /// The stored/serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditStatus::Success => "success",
            AuditStatus::Error => "error",
            AuditStatus::Timeout => "timeout",
            AuditStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored/serialised name.
    pub fn parse(s: &str) -> Option<AuditStatus> {
        [AuditStatus::Success, AuditStatus::Error, AuditStatus::Timeout, AuditStatus::Cancelled]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

/// Which audit entries a list, stats or export covers. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditFilter {
    /// Exact model id.
    pub model: Option<String>,
    /// Substring of the model id (case-insensitive for ASCII).
    pub model_contains: Option<String>,
    /// Backend.
    pub backend_type: Option<BackendType>,
    /// Outcome.
    pub status: Option<AuditStatus>,
    /// Exact endpoint path.
    pub endpoint: Option<String>,
    /// Exact finish reason (`length`, `tool_use`, …). Stats over this filter are counted from
    /// the rows themselves (the rollups do not keep finish reasons), so they cost a scan.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Inclusive lower bound on the timestamp.
    pub start_time: Option<DateTime<Utc>>,
    /// Exclusive upper bound on the timestamp.
    pub end_time: Option<DateTime<Utc>>,
}

/// One page of entries, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Pass back as `cursor` for the next (older) page; None at the end.
    pub next_cursor: Option<String>,
}

/// Requests and errors in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditBucket {
    /// Bucket start (UTC).
    pub start: DateTime<Utc>,
    /// Requests in the bucket.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub requests: u64,
    /// Of which not successful.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub errors: u64,
    /// Mean duration of the bucket's requests, ms.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub avg_duration_ms: u64,
}

/// Aggregates over a filtered set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditStats {
    /// Entries matched.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub total: u64,
    /// The same count as `total`, under the name the original product's API and UI use, so
    /// clients written for it keep working.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub total_requests: u64,
    /// Count per status name.
    #[cfg_attr(feature = "specta", specta(type = std::collections::BTreeMap<String, u32>))]
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Count per backend name.
    #[cfg_attr(feature = "specta", specta(type = std::collections::BTreeMap<String, u32>))]
    pub by_backend: std::collections::BTreeMap<String, u64>,
    /// Count per model id.
    #[cfg_attr(feature = "specta", specta(type = std::collections::BTreeMap<String, u32>))]
    pub by_model: std::collections::BTreeMap<String, u64>,
    /// Distinct models.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub unique_models: u64,
    /// Sum of prompt tokens.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub prompt_tokens: u64,
    /// Sum of completion tokens.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub completion_tokens: u64,
    /// Median duration (ms; exact below 128 ms, within 1/128 above), None when empty.
    #[cfg_attr(feature = "specta", specta(type = Option<u32>))]
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile duration (ms; exact below 128 ms, within 1/128 above), None when empty.
    #[cfg_attr(feature = "specta", specta(type = Option<u32>))]
    pub latency_p95_ms: Option<u64>,
    /// Width of each series bucket in seconds.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub bucket_seconds: u64,
    /// Requests and errors over time, oldest first (empty buckets omitted).
    pub series: Vec<AuditBucket>,
}
