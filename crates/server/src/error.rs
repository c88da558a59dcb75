//! The one error envelope: every error response on every route is an RFC 7807 problem document
//! (`application/problem+json`) that also carries the `error` member the route's SDK parses
//! (OpenAI's `{"error": {message, type, param, code}}`, or Anthropic's `{"type": "error",
//! "error": {type, message}}`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mlx_manager_engine::EngineError;
use mlx_manager_providers::ProviderError;
use serde_json::json;

pub use mlx_manager_api::FieldError;

/// Everything the HTTP layer can answer with instead of a success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No route for this path.
    #[error("no route for this path")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The body is not JSON (syntax, encoding, nesting).
    #[error("the request body is not valid JSON: {0}")]
    BadJson(String),
    /// The body is not declared as JSON.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Well-formed JSON with invalid or unsupported fields.
    #[error("{}", .0.first().map(|e| format!("{}: {}", e.field, e.message)).unwrap_or_default())]
    Validation(Vec<FieldError>),
    /// No such model.
    #[error("model `{0}` not found")]
    ModelNotFound(String),
    /// Missing or wrong API key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Host or Origin not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests in flight.
    #[error("the server is busy; retry shortly")]
    Overloaded,
    /// The endpoint's timeout expired.
    #[error("the request did not finish within {seconds} s")]
    Timeout {
        /// The timeout that applied.
        seconds: u32,
    },
    /// Shutting down.
    #[error("the server is shutting down")]
    Draining,
    /// Loading the model would exceed the memory budget.
    #[error("not enough memory to load `{model}`: it needs {needed_bytes} bytes, {available_bytes} are available")]
    InsufficientMemory {
        /// The model.
        model: String,
        /// Bytes needed.
        needed_bytes: u64,
        /// Bytes available within the budget.
        available_bytes: u64,
    },
    /// The model is of a family this engine does not implement: the client's choice of model,
    /// answered before anything is loaded or evicted.
    #[error("model `{model}` is a `{model_type}` model, which this server cannot run; it runs {}", mlx_manager_engine::supported_model_types().join(", "))]
    UnsupportedArchitecture {
        /// The model asked for.
        model: String,
        /// Its `model_type`.
        model_type: String,
    },
    /// A model folder could not be loaded (details in the server log).
    #[error("model `{0}` could not be loaded; see the server log")]
    ModelLoad(String),
    /// The model was unloaded (forced) while the request ran on it.
    #[error("model `{0}` was unloaded while this request ran; retry to load it again")]
    ModelUnloaded(String),
    /// The engine has stopped.
    #[error("the inference engine is not running")]
    EngineUnavailable,
    /// A provider answered with an error status (its message, keys scrubbed).
    #[error("{message}")]
    Upstream {
        /// The upstream's status.
        status: u16,
        /// `provider \`name\` answered …`.
        message: String,
        /// The upstream's `Retry-After`.
        retry_after: Option<u32>,
    },
    /// A provider could not be reached.
    #[error("{0}")]
    UpstreamUnreachable(String),
    /// A provider did not answer in time.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// A provider or routing rule that does not exist.
    #[error("{0}")]
    NoSuchItem(String),
    /// The change conflicts with the current configuration (duplicate name, provider in use).
    #[error("{0}")]
    Conflict(String),
    /// `HF_HUB_OFFLINE` is set: the model library does not contact the Hub.
    #[error("HF_HUB_OFFLINE is set, so the Hugging Face Hub is not contacted; unset it to search or download")]
    HubOffline,
    /// The Hub refused a gated or private repo (the message says which token to set).
    #[error("{0}")]
    HubAccessDenied(String),
    /// The Hub failed (after retries), could not be reached, or sent bytes that failed
    /// verification.
    #[error("{0}")]
    Hub(String),
    /// Not enough disk space for a download.
    #[error("not enough disk space for this download: it needs {needed_bytes} more bytes and {free_bytes} are free")]
    InsufficientDisk {
        /// Bytes still to download.
        needed_bytes: u64,
        /// Bytes free where the Hugging Face cache is.
        free_bytes: u64,
    },
    /// Anything else (details only in the server log).
    #[error("internal error")]
    Internal,
}

/// Which SDK reads the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OpenAI routes and everything else.
    OpenAi,
    /// `/v1/messages`.
    Anthropic,
}

impl Flavor {
    /// The flavour of a request path.
    pub fn of_path(path: &str) -> Flavor {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Flavor::Anthropic
        } else {
            Flavor::OpenAi
        }
    }
}

impl ApiError {
    /// Names `field` in a validation error that names none (an engine error about a request
    /// value the engine does not know the field of, such as a grammar built from it).
    pub fn on_field(self, field: &str) -> ApiError {
        match self {
            ApiError::Validation(mut errors) => {
                for e in errors.iter_mut().filter(|e| e.field.is_empty()) {
                    e.field = field.to_string();
                }
                ApiError::Validation(errors)
            }
            other => other,
        }
    }

    /// Maps an engine error; internal details go to the log, not the client.
    pub fn from_engine(e: EngineError, model: &str) -> ApiError {
        match e {
            EngineError::ModelNotFound { model } => ApiError::ModelNotFound(model),
            EngineError::InvalidRequest { field, message } => {
                ApiError::Validation(vec![FieldError { field: field.to_string(), message }])
            }
            EngineError::ContextLength { prompt_tokens, context_length } => ApiError::Validation(vec![FieldError {
                field: "messages".into(),
                message: format!("the prompt has {prompt_tokens} tokens; this model's context is {context_length}"),
            }]),
            EngineError::PromptTooLarge { bytes, min_tokens, context_length } => ApiError::Validation(vec![FieldError {
                field: "messages".into(),
                message: format!(
                    "the prompt is {bytes} bytes, at least {min_tokens} tokens; this model's context is {context_length}"
                ),
            }]),
            // llguidance's message can go on with the whole grammar and token lists: its first
            // line says what is wrong. (The field is the caller's: see `ApiError::on_field`.)
            EngineError::Grammar { message } => ApiError::Validation(vec![FieldError {
                field: String::new(),
                message: format!("the output constraint cannot be enforced on this model: {}", first_line(&message, 200)),
            }]),
            EngineError::ChatTemplate { message } => ApiError::Validation(vec![FieldError {
                field: "messages".into(),
                message: format!("chat template: {message}"),
            }]),
            EngineError::UnsupportedArchitecture { model_type, .. } => {
                ApiError::UnsupportedArchitecture { model: model.to_string(), model_type }
            }
            e @ (EngineError::Io { .. }
            | EngineError::InvalidConfig { .. }
            | EngineError::MissingTensor { .. }
            | EngineError::TensorShape { .. }
            | EngineError::UnexpectedTensor { .. }
            | EngineError::CorruptWeights { .. }
            | EngineError::Tokenizer { .. }) => {
                tracing::error!(model, error = %e, "model load failed");
                ApiError::ModelLoad(model.to_string())
            }
            EngineError::InsufficientMemory { model, needed_bytes, available_bytes } => {
                ApiError::InsufficientMemory { model, needed_bytes, available_bytes }
            }
            e @ EngineError::Mlx { .. } => {
                tracing::error!(model, error = %e, "engine error");
                ApiError::Internal
            }
            EngineError::Unloaded { model } => ApiError::ModelUnloaded(model),
            EngineError::Stopped => ApiError::EngineUnavailable,
        }
    }

    /// Maps a provider/routing error; keys never appear in these messages.
    pub fn from_provider(e: ProviderError) -> ApiError {
        let field = e.field();
        let message = e.to_string();
        match e {
            ProviderError::Unsupported { field, backend, message } => ApiError::Validation(vec![FieldError {
                field,
                message: format!("not supported when routed to {backend}: {message}"),
            }]),
            ProviderError::UpstreamStatus { status, retry_after, .. } => {
                ApiError::Upstream { status, message, retry_after }
            }
            ProviderError::Unreachable { .. } | ProviderError::Protocol { .. } => {
                ApiError::UpstreamUnreachable(message)
            }
            ProviderError::UpstreamTimeout { .. } => ApiError::UpstreamTimeout(message),
            ProviderError::ProviderNotFound(_) | ProviderError::RuleNotFound(_) => ApiError::NoSuchItem(message),
            ProviderError::DuplicateProvider(_) | ProviderError::ProviderInUse { .. } => ApiError::Conflict(message),
            ProviderError::Secret(_) | ProviderError::Store(_) => {
                tracing::error!(error = %message, "provider configuration could not be saved");
                ApiError::Internal
            }
            _ => ApiError::Validation(vec![FieldError { field: field.unwrap_or_default().to_string(), message }]),
        }
    }

    /// A request field the target API cannot express.
    pub fn from_conversion(e: mlx_manager_api::ApiTypeError) -> ApiError {
        match e {
            mlx_manager_api::ApiTypeError::Untranslatable { field, message } => {
                ApiError::Validation(vec![FieldError { field, message }])
            }
        }
    }

    /// Maps a model-library error; file-system details go to the log, not the client.
    pub fn from_library(e: mlx_manager_library::LibraryError) -> ApiError {
        use mlx_manager_library::LibraryError as L;
        let message = e.to_string();
        match e {
            L::InvalidRepoId(_) | L::NotAModel { .. } => {
                ApiError::Validation(vec![FieldError { field: "repo".into(), message }])
            }
            L::Offline => ApiError::HubOffline,
            L::AccessDenied { .. } => ApiError::HubAccessDenied(message),
            L::RepoNotFound { .. }
            | L::RevisionNotFound { .. }
            | L::EntryNotFound { .. }
            | L::NoSuchDownload(_)
            | L::NotInstalled { .. } => ApiError::NoSuchItem(message),
            L::InsufficientDisk { needed_bytes, free_bytes, .. } => {
                ApiError::InsufficientDisk { needed_bytes, free_bytes }
            }
            L::ChecksumMismatch { .. } | L::HubStatus { .. } | L::Network { .. } | L::Protocol { .. } => {
                ApiError::Hub(message)
            }
            L::Busy { .. } => ApiError::Conflict(message),
            L::NoCacheDir | L::Io { .. } => {
                tracing::error!(error = %message, "model library");
                ApiError::Internal
            }
        }
    }

    /// Failures that let a routing rule's fallback backend serve the request instead.
    pub fn allows_fallback(&self) -> bool {
        match self {
            ApiError::Upstream { status, .. } => *status == 429 || *status >= 500,
            ApiError::UpstreamUnreachable(_)
            | ApiError::UpstreamTimeout(_)
            | ApiError::ModelNotFound(_)
            | ApiError::ModelLoad(_)
            | ApiError::UnsupportedArchitecture { .. }
            | ApiError::ModelUnloaded(_)
            | ApiError::InsufficientMemory { .. }
            | ApiError::Overloaded
            | ApiError::EngineUnavailable
            | ApiError::Internal => true,
            _ => false,
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Upstream { status, .. } => match *status {
                429 => StatusCode::TOO_MANY_REQUESTS,
                // The upstream refused our key: the server's configuration, not the client's.
                401 | 403 => StatusCode::BAD_GATEWAY,
                s @ 400..=499 => StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
                _ => StatusCode::BAD_GATEWAY,
            },
            ApiError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::NoSuchItem(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::HubOffline => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::HubAccessDenied(_) => StatusCode::FORBIDDEN,
            ApiError::Hub(_) => StatusCode::BAD_GATEWAY,
            ApiError::InsufficientDisk { .. } => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::NotFound | ApiError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) | ApiError::UnsupportedArchitecture { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Draining | ApiError::EngineUnavailable | ApiError::ModelUnloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::ModelLoad(_) | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::InsufficientMemory { .. } => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// Our stable error code (also the last segment of the problem `type`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadJson(_) => "invalid_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Validation(_) => "validation_error",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::Unauthorized => "invalid_api_key",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Overloaded => "overloaded",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Draining => "shutting_down",
            ApiError::ModelLoad(_) => "model_load_failed",
            ApiError::UnsupportedArchitecture { .. } => "unsupported_architecture",
            ApiError::InsufficientMemory { .. } => "insufficient_memory",
            ApiError::EngineUnavailable => "engine_unavailable",
            ApiError::ModelUnloaded(_) => "model_unloaded",
            ApiError::Upstream { status: 429, .. } => "upstream_rate_limited",
            ApiError::Upstream { status: 401 | 403, .. } => "upstream_auth_failed",
            ApiError::Upstream { .. } => "upstream_error",
            ApiError::UpstreamUnreachable(_) => "upstream_unreachable",
            ApiError::UpstreamTimeout(_) => "upstream_timeout",
            ApiError::NoSuchItem(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::HubOffline => "hub_offline",
            ApiError::HubAccessDenied(_) => "hub_access_denied",
            ApiError::Hub(_) => "hub_error",
            ApiError::InsufficientDisk { .. } => "insufficient_disk_space",
            ApiError::Internal => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::BadJson(_) => "Malformed JSON",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::Validation(_) => "Invalid request",
            ApiError::ModelNotFound(_) => "Model not found",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Overloaded => "Too many requests",
            ApiError::Timeout { .. } => "Request timeout",
            ApiError::Draining => "Shutting down",
            ApiError::ModelLoad(_) => "Model load failed",
            ApiError::UnsupportedArchitecture { .. } => "Unsupported model architecture",
            ApiError::InsufficientMemory { .. } => "Insufficient memory",
            ApiError::EngineUnavailable => "Engine unavailable",
            ApiError::ModelUnloaded(_) => "Model unloaded",
            ApiError::Upstream { .. } => "Upstream error",
            ApiError::UpstreamUnreachable(_) => "Upstream unreachable",
            ApiError::UpstreamTimeout(_) => "Upstream timeout",
            ApiError::NoSuchItem(_) => "Not found",
            ApiError::Conflict(_) => "Conflict",
            ApiError::HubOffline => "Hub offline",
            ApiError::HubAccessDenied(_) => "Hub access denied",
            ApiError::Hub(_) => "Hub error",
            ApiError::InsufficientDisk { .. } => "Insufficient disk space",
            ApiError::Internal => "Internal error",
        }
    }

    /// OpenAI's `error.type`.
    fn openai_type(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "authentication_error",
            ApiError::Forbidden(_) => "permission_error",
            ApiError::Overloaded => "rate_limit_error",
            ApiError::Timeout { .. } => "timeout_error",
            ApiError::NotFound | ApiError::ModelNotFound(_) | ApiError::NoSuchItem(_) => "not_found_error",
            ApiError::Upstream { status: 429, .. } => "rate_limit_error",
            ApiError::Upstream { status: 400..=499, .. } if self.status().is_client_error() => "invalid_request_error",
            ApiError::Upstream { .. } | ApiError::UpstreamUnreachable(_) | ApiError::UpstreamTimeout(_) => {
                "server_error"
            }
            ApiError::HubAccessDenied(_) => "permission_error",
            ApiError::Draining
            | ApiError::EngineUnavailable
            | ApiError::ModelUnloaded(_)
            | ApiError::ModelLoad(_)
            | ApiError::InsufficientMemory { .. }
            | ApiError::HubOffline
            | ApiError::Hub(_)
            | ApiError::InsufficientDisk { .. }
            | ApiError::Internal => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// Anthropic's `error.type`.
    fn anthropic_type(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "authentication_error",
            ApiError::Forbidden(_) => "permission_error",
            ApiError::NotFound | ApiError::ModelNotFound(_) | ApiError::NoSuchItem(_) => "not_found_error",
            ApiError::Upstream { status: 429, .. } => "rate_limit_error",
            ApiError::Upstream { .. } if self.status().is_client_error() => "invalid_request_error",
            ApiError::Upstream { .. } | ApiError::UpstreamUnreachable(_) | ApiError::UpstreamTimeout(_) => "api_error",
            ApiError::PayloadTooLarge { .. } => "request_too_large",
            ApiError::Overloaded => "rate_limit_error",
            ApiError::Timeout { .. } => "timeout_error",
            ApiError::Draining | ApiError::EngineUnavailable | ApiError::ModelUnloaded(_) => "overloaded_error",
            ApiError::ModelLoad(_) | ApiError::InsufficientMemory { .. } | ApiError::Internal => "api_error",
            ApiError::HubAccessDenied(_) => "permission_error",
            ApiError::HubOffline | ApiError::Hub(_) | ApiError::InsufficientDisk { .. } => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The problem document for this error.
    pub fn body(&self, flavor: Flavor, instance: &str, request_id: &str) -> serde_json::Value {
        let message = self.to_string();
        let param = match self {
            ApiError::Validation(errors) => errors.first().map(|e| e.field.clone()),
            ApiError::UnsupportedArchitecture { .. } => Some("model".to_string()),
            _ => None,
        };
        let mut body = json!({
            "type": format!("https://mlx-manager.dev/errors/{}", self.code()),
            "title": self.title(),
            "status": self.status().as_u16(),
            "detail": message,
            "instance": instance,
            "request_id": request_id,
            "code": self.code(),
        });
        let obj = body.as_object_mut().expect("object");
        match flavor {
            Flavor::OpenAi => {
                obj.insert(
                    "error".into(),
                    json!({"message": message, "type": self.openai_type(), "param": param, "code": self.code()}),
                );
            }
            Flavor::Anthropic => {
                obj.insert("type".into(), json!("error"));
                obj.insert("error".into(), json!({"type": self.anthropic_type(), "message": message}));
            }
        }
        match self {
            ApiError::Validation(errors) => {
                obj.insert("errors".into(), json!(errors));
            }
            ApiError::Timeout { seconds } => {
                obj.insert("timeout_seconds".into(), json!(seconds));
            }
            ApiError::UnsupportedArchitecture { model_type, .. } => {
                obj.insert("errors".into(), json!([FieldError { field: "model".into(), message: message.clone() }]));
                obj.insert("model_type".into(), json!(model_type));
                obj.insert("supported_model_types".into(), json!(mlx_manager_engine::supported_model_types()));
            }
            ApiError::InsufficientMemory { needed_bytes, available_bytes, .. } => {
                obj.insert("needed_bytes".into(), json!(needed_bytes));
                obj.insert("available_bytes".into(), json!(available_bytes));
            }
            ApiError::InsufficientDisk { needed_bytes, free_bytes } => {
                obj.insert("needed_bytes".into(), json!(needed_bytes));
                obj.insert("free_bytes".into(), json!(free_bytes));
            }
            _ => {}
        }
        body
    }

    /// `Retry-After` seconds, for the statuses that have one.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Overloaded => Some(1),
            ApiError::Upstream { status: 429, retry_after, .. } => Some(retry_after.unwrap_or(1)),
            ApiError::Draining | ApiError::EngineUnavailable => Some(5),
            _ => None,
        }
    }
}

/// Handlers return this; the envelope middleware renders it with the request id and path.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Renders the final response for `error` (called by the envelope middleware).
pub fn render(error: &ApiError, flavor: Flavor, instance: &str, request_id: &str) -> Response {
    let body = error.body(flavor, instance, request_id).to_string();
    let mut response = (error.status(), body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if let Some(secs) = error.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if matches!(error, ApiError::Unauthorized) {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The first line of `text`, cut at `max` characters (with `…` when cut).
fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}
