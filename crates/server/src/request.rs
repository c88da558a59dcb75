//! A model request, typed and validated once, before routing and before any model is loaded:
//! the body becomes the API's own type (an error names the field, as the client wrote it), then
//! the API's range and shape checks run ([`mlx_manager_api`]'s `validate`).

use mlx_manager_api::anthropic::MessagesRequest;
use mlx_manager_api::openai::{ChatRequest, CompletionRequest, EmbeddingsRequest};
use mlx_manager_core::EndpointKind;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError, Flavor};
use crate::extract::typed;

/// The routed model APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Chat,
    Completions,
    Embeddings,
    Messages,
}

impl Api {
    pub(crate) fn kind(self) -> EndpointKind {
        match self {
            Api::Chat | Api::Messages => EndpointKind::Chat,
            Api::Completions => EndpointKind::Completions,
            Api::Embeddings => EndpointKind::Embeddings,
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Completions => "/v1/completions",
            Api::Embeddings => "/v1/embeddings",
            Api::Messages => "/v1/messages",
        }
    }

    pub(crate) fn flavor(self) -> Flavor {
        if self == Api::Messages {
            Flavor::Anthropic
        } else {
            Flavor::OpenAi
        }
    }
}

/// A validated request of one of the APIs.
#[derive(Debug, Clone)]
pub(crate) enum ModelRequest {
    Chat(ChatRequest),
    Completions(CompletionRequest),
    Embeddings(EmbeddingsRequest),
    Messages(MessagesRequest),
}

fn checked(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

impl ModelRequest {
    /// Parses and validates a body of `api`.
    pub(crate) fn parse(api: Api, body: Map<String, Value>) -> Result<ModelRequest, ApiError> {
        let request = match api {
            Api::Chat => ModelRequest::Chat(typed(body)?),
            Api::Completions => ModelRequest::Completions(typed(body)?),
            Api::Embeddings => ModelRequest::Embeddings(typed(body)?),
            Api::Messages => ModelRequest::Messages(typed(body)?),
        };
        checked(match &request {
            ModelRequest::Chat(r) => r.validate(),
            ModelRequest::Completions(r) => r.validate(),
            ModelRequest::Embeddings(r) => r.validate(),
            ModelRequest::Messages(r) => r.validate(),
        })?;
        Ok(request)
    }

    /// The model it names.
    pub(crate) fn model(&self) -> &str {
        match self {
            ModelRequest::Chat(r) => &r.model,
            ModelRequest::Completions(r) => &r.model,
            ModelRequest::Embeddings(r) => &r.model,
            ModelRequest::Messages(r) => &r.model,
        }
    }

    /// The same request for another model name (a routing target's).
    pub(crate) fn for_model(&self, model: &str) -> ModelRequest {
        let mut r = self.clone();
        match &mut r {
            ModelRequest::Chat(r) => r.model = model.to_string(),
            ModelRequest::Completions(r) => r.model = model.to_string(),
            ModelRequest::Embeddings(r) => r.model = model.to_string(),
            ModelRequest::Messages(r) => r.model = model.to_string(),
        }
        r
    }

    /// The body as JSON again (for a provider that takes it as it is).
    pub(crate) fn body(&self) -> Map<String, Value> {
        let value = match self {
            ModelRequest::Chat(r) => serde_json::to_value(r),
            ModelRequest::Completions(r) => serde_json::to_value(r),
            ModelRequest::Embeddings(r) => serde_json::to_value(r),
            ModelRequest::Messages(r) => serde_json::to_value(r),
        };
        match value {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}
