//! The crate's one error type: configuration mistakes (typed, with the field they are about) and
//! upstream failures (classified for fallback). No variant ever carries a key.

use mlx_manager_core::{ExposeSecret, SecretString};

/// Everything that can go wrong configuring providers and rules, or calling an upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A provider name outside `[A-Za-z0-9_.-]{1,64}`, or `local`.
    #[error("invalid provider name `{name}`: use 1-64 letters, digits, `_`, `.` or `-` (not `local`)")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A base URL that is not an absolute http(s) URL.
    #[error("invalid base URL `{url}`: {message}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why.
        message: String,
    },
    /// A hosted provider without a key.
    #[error("provider `{provider}` needs an API key")]
    MissingKey {
        /// The provider.
        provider: String,
    },
    /// An extra header that is not a valid HTTP header (or one we set ourselves).
    #[error("invalid extra header `{name}`: {message}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// Why.
        message: String,
    },
    /// A timeout outside 1..=86400 s.
    #[error("timeout_seconds must be between 1 and 86400")]
    InvalidTimeout,
    /// A second provider with the same name.
    #[error("a provider named `{0}` already exists")]
    DuplicateProvider(String),
    /// No provider of that name.
    #[error("no provider named `{0}`")]
    ProviderNotFound(String),
    /// Rules still send traffic to the provider being deleted.
    #[error("provider `{provider}` is used by routing rules {rules:?}; change or delete them first")]
    ProviderInUse {
        /// The provider.
        provider: String,
        /// The rules naming it.
        rules: Vec<u32>,
    },
    /// A rule naming a backend that is neither `local` nor a provider.
    #[error("unknown backend `{name}` in `{field}`: use `local` or a provider name")]
    UnknownBackend {
        /// `backend` or `fallback`.
        field: &'static str,
        /// The name given.
        name: String,
    },
    /// A rule pattern that is not a valid regular expression.
    #[error("invalid regex `{pattern}`: {message}")]
    InvalidRegex {
        /// The pattern.
        pattern: String,
        /// The regex crate's explanation.
        message: String,
    },
    /// Any other invalid rule field.
    #[error("{field}: {message}")]
    InvalidRule {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// No rule with that id.
    #[error("no routing rule with id {0}")]
    RuleNotFound(u32),
    /// The keychain or the encrypted key file failed.
    #[error("key storage failed: {0}")]
    Secret(String),
    /// Persisting the configuration failed.
    #[error(transparent)]
    Store(#[from] mlx_manager_core::PersistError),
    /// The request uses something the target API cannot express.
    #[error("{field}: not supported when routed to {backend}: {message}")]
    Unsupported {
        /// The request field.
        field: String,
        /// The backend name.
        backend: String,
        /// Why.
        message: String,
    },
    /// The upstream could not be reached (refused, DNS, TLS, reset).
    #[error("provider `{provider}` is unreachable: {message}")]
    Unreachable {
        /// The provider.
        provider: String,
        /// What failed (never the key).
        message: String,
    },
    /// The upstream did not answer in time.
    #[error("provider `{provider}` did not answer within {seconds} s")]
    UpstreamTimeout {
        /// The provider.
        provider: String,
        /// The limit that applied.
        seconds: u32,
    },
    /// The upstream answered with an error status.
    #[error("provider `{provider}` answered {status}: {message}")]
    UpstreamStatus {
        /// The provider.
        provider: String,
        /// Its HTTP status.
        status: u16,
        /// Its error message (keys scrubbed).
        message: String,
        /// Its `Retry-After`, seconds.
        retry_after: Option<u32>,
    },
    /// The upstream answered something that is not its API's format.
    #[error("provider `{provider}` sent an invalid response: {message}")]
    Protocol {
        /// The provider.
        provider: String,
        /// What was wrong.
        message: String,
    },
}

impl ProviderError {
    /// Failures that let a rule's fallback backend serve the request instead: the upstream was
    /// down, slow, rate-limited or broken — not a request the upstream rejected.
    pub fn allows_fallback(&self) -> bool {
        match self {
            ProviderError::Unreachable { .. } | ProviderError::UpstreamTimeout { .. } => true,
            ProviderError::UpstreamStatus { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The input field a configuration error is about (for forms and 422 documents).
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            ProviderError::InvalidName { .. } | ProviderError::DuplicateProvider(_) => "name",
            ProviderError::InvalidUrl { .. } => "base_url",
            ProviderError::MissingKey { .. } => "api_key",
            ProviderError::InvalidHeader { .. } => "extra_headers",
            ProviderError::InvalidTimeout => "timeout_seconds",
            ProviderError::UnknownBackend { field, .. } => field,
            ProviderError::InvalidRegex { .. } => "pattern",
            ProviderError::InvalidRule { field, .. } => field,
            _ => return None,
        })
    }
}

/// Replaces every occurrence of `key` in `text` (an upstream's error message may echo it).
pub(crate) fn scrub(text: &str, key: Option<&SecretString>) -> String {
    match key.map(|k| k.expose_secret()) {
        Some(k) if k.len() >= 4 && text.contains(k) => text.replace(k, "[redacted]"),
        _ => text.to_string(),
    }
}
