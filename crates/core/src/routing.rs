//! Cloud providers and the routing rules that send model names to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{BackendType, SecretString};

/// The backend name that means the local engine (a provider may not use it).
pub const LOCAL_BACKEND: &str = "local";

/// What API a provider speaks, and whose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI's API (key required).
    Openai,
    /// Anthropic's API (key required).
    Anthropic,
    /// Any server speaking OpenAI's API (vLLM, Together, Groq, another MLX Manager, …).
    OpenaiCompatible,
    /// Any server speaking Anthropic's Messages API.
    AnthropicCompatible,
}

impl ProviderKind {
    /// The audit backend type of requests it serves.
    pub fn backend_type(self) -> BackendType {
        match self {
            ProviderKind::Openai => BackendType::Openai,
            ProviderKind::Anthropic => BackendType::Anthropic,
            ProviderKind::OpenaiCompatible => BackendType::OpenaiCompatible,
            ProviderKind::AnthropicCompatible => BackendType::AnthropicCompatible,
        }
    }

    /// Speaks the Anthropic Messages API (else OpenAI's).
    pub fn is_anthropic(self) -> bool {
        matches!(self, ProviderKind::Anthropic | ProviderKind::AnthropicCompatible)
    }

    /// The hosted services need a key; compatible servers may not.
    pub fn requires_key(self) -> bool {
        matches!(self, ProviderKind::Openai | ProviderKind::Anthropic)
    }

    /// The base URL used when none is given (hosted services only). OpenAI-style base URLs end in
    /// `/v1` (as the openai SDKs expect); Anthropic-style ones do not (as the anthropic SDKs expect).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Openai => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            _ => None,
        }
    }
}

/// A provider as stored (its key lives in the keychain, never here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ProviderConfig {
    /// Unique name, used by routing rules (`[A-Za-z0-9_.-]`, 1–64, not `local`).
    pub name: String,
    /// The API it speaks.
    pub kind: ProviderKind,
    /// e.g. `https://api.openai.com/v1`, `https://api.anthropic.com`, `http://10.0.0.5:8000/v1`.
    pub base_url: String,
    /// Sent with every request (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub extra_headers: BTreeMap<String, String>,
    /// Disabled providers are skipped by routing (their rules fall through to the fallback).
    pub enabled: bool,
    /// Seconds to wait for the upstream's response headers before giving up (and falling back);
    /// None: the endpoint's own timeout.
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
}

/// A provider as the UI and the admin API edit it.
// Input only: it has no `Serialize`, so the key it carries cannot be written out by accident.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ProviderInput {
    /// See [`ProviderConfig`].
    pub name: String,
    /// See [`ProviderConfig`].
    pub kind: ProviderKind,
    /// See [`ProviderConfig`]; empty: the kind's default.
    #[serde(default)]
    pub base_url: String,
    /// See [`ProviderConfig`].
    #[serde(default)]
    pub extra_headers: BTreeMap<String, String>,
    /// See [`ProviderConfig`].
    #[serde(default = "yes")]
    pub enabled: bool,
    /// See [`ProviderConfig`].
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    /// The key. On an edit, None keeps the stored key and `""` removes it.
    #[serde(default)]
    #[cfg_attr(feature = "specta", specta(type = Option<String>))]
    pub api_key: Option<SecretString>,
}

fn yes() -> bool {
    true
}

/// Where a provider's key is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum KeyStorage {
    /// The OS keychain (macOS Keychain, Secret Service on Linux).
    Keychain,
    /// An encrypted file in the data dir (when no keychain is available).
    EncryptedFile,
}

/// A provider as shown: the key only as a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ProviderView {
    /// The stored settings.
    #[serde(flatten)]
    pub config: ProviderConfig,
    /// `…` and the key's last four characters, when a key is set.
    pub api_key_hint: Option<String>,
    /// Where the key is kept.
    pub key_storage: KeyStorage,
}

/// How a rule's pattern matches a model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    /// The whole name.
    Exact,
    /// The name starts with the pattern.
    Prefix,
    /// The pattern (a regular expression) matches the whole name.
    Regex,
}

/// A routing rule as the UI and the admin API edit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RuleInput {
    /// What to match.
    pub pattern: String,
    /// How to match it.
    pub match_type: MatchType,
    /// Higher first; equal priorities in creation order.
    #[serde(default)]
    pub priority: i32,
    /// `local` or a provider name.
    pub backend: String,
    /// The model name to send to the backend (default: the requested name).
    #[serde(default)]
    pub backend_model: Option<String>,
    /// `local` or a provider name that serves the request when the backend fails (connection,
    /// timeout, 429, 5xx).
    #[serde(default)]
    pub fallback: Option<String>,
    /// The model name to send to the fallback backend (default: the requested name).
    #[serde(default)]
    pub fallback_model: Option<String>,
    /// Disabled rules are skipped.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A stored routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RoutingRule {
    /// Assigned on creation.
    pub id: u32,
    /// The rule.
    #[serde(flatten)]
    pub rule: RuleInput,
}

/// Where a model name would go (the "Test rule" answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RouteTest {
    /// The model name tested.
    pub model: String,
    /// The rule that matched (None: no rule matched, the local engine serves it).
    pub rule_id: Option<u32>,
    /// `local` or the provider name.
    pub backend: String,
    /// Its backend type.
    pub backend_type: BackendType,
    /// The model name the backend receives.
    pub backend_model: String,
    /// The fallback backend, if any.
    pub fallback: Option<String>,
    /// The model name the fallback backend receives.
    pub fallback_model: Option<String>,
}

/// The "Test provider" answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ProviderTestResult {
    /// The upstream answered with a success.
    pub ok: bool,
    /// Round trip, ms.
    pub latency_ms: u32,
    /// The upstream's HTTP status, when it answered.
    pub status: Option<u16>,
    /// `"HTTP 200"` or the upstream's error (never the key).
    pub message: String,
}
