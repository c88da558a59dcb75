//! Serving one request on one provider. Chat and Messages requests go out in the provider's own
//! API (converted with the typed layer's conversions when the client spoke the other one) and
//! come back as the API-neutral [`Event`]s (or a whole [`Answer`]) that the server encodes for
//! its client — so a passed-through answer and a translated one take the same way.
//! Completions and embeddings (OpenAI only) pass through as they are.

mod stream;

use std::time::Duration;

use mlx_manager_api::anthropic::MessageResponse;
use mlx_manager_api::anthropic::MessagesRequest;
use mlx_manager_api::openai::{ChatCompletion, ChatRequest, StreamOptions};
use mlx_manager_api::{Answer, ApiTypeError, ChatDialect};
use mlx_manager_core::ProviderKind;
use serde_json::{Map, Value};

use crate::error::ProviderError;
use crate::upstream::Provider;
use crate::{ChatReply, Reply};

fn unsupported(e: ApiTypeError, backend: &str) -> ProviderError {
    match e {
        ApiTypeError::Untranslatable { field, message } => {
            ProviderError::Unsupported { field, backend: backend.to_string(), message }
        }
    }
}

fn protocol(provider: &str, what: &str, e: serde_json::Error) -> ProviderError {
    ProviderError::Protocol { provider: provider.to_string(), message: format!("{what}: {e}") }
}

fn body_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("API types serialise")
}

/// An OpenAI chat request (`model` already the backend's name) on `provider`.
pub(crate) async fn openai_chat(
    client: &reqwest::Client,
    provider: &Provider,
    mut req: ChatRequest,
    timeout: Duration,
) -> Result<ChatReply, ProviderError> {
    let name = provider.name().to_string();
    req.keep_alive = None;
    if provider.config.kind.is_anthropic() {
        let upstream = mlx_manager_api::chat_to_messages(&req).map_err(|e| unsupported(e, &name))?;
        return messages_on(client, provider, &body_of(&upstream), upstream.streams(), timeout).await;
    }
    if provider.config.kind == ProviderKind::Openai {
        mlx_manager_api::for_openai(&mut req).map_err(|e| unsupported(e, &name))?;
    }
    chat_on(client, provider, req, timeout).await
}

/// An Anthropic Messages request on `provider`.
pub(crate) async fn anthropic_messages(
    client: &reqwest::Client,
    provider: &Provider,
    mut req: MessagesRequest,
    timeout: Duration,
) -> Result<ChatReply, ProviderError> {
    let name = provider.name().to_string();
    req.keep_alive = None;
    if provider.config.kind.is_anthropic() {
        return messages_on(client, provider, &body_of(&req), req.streams(), timeout).await;
    }
    let dialect =
        if provider.config.kind == ProviderKind::Openai { ChatDialect::OpenAi } else { ChatDialect::Compatible };
    let upstream = mlx_manager_api::messages_to_chat(&req, dialect).map_err(|e| unsupported(e, &name))?;
    chat_on(client, provider, upstream, timeout).await
}

/// A chat request on an OpenAI-style provider; streams always ask for usage (the audit log
/// needs it; the client's encoder decides whether the client sees it).
async fn chat_on(
    client: &reqwest::Client,
    provider: &Provider,
    mut req: ChatRequest,
    timeout: Duration,
) -> Result<ChatReply, ProviderError> {
    let name = provider.name().to_string();
    if req.streams() {
        req.stream_options = Some(StreamOptions { include_usage: true });
        let up = provider.post_stream(client, "chat/completions", &body_of(&req), timeout).await?;
        return Ok(ChatReply::Events(stream::openai_events(up, name)));
    }
    let answer = provider.post_json(client, "chat/completions", &body_of(&req), timeout).await?;
    let completion: ChatCompletion =
        serde_json::from_value(answer).map_err(|e| protocol(&name, "not a chat completion", e))?;
    Ok(ChatReply::Answer(Answer::from(completion)))
}

/// A Messages body on an Anthropic-style provider.
async fn messages_on(
    client: &reqwest::Client,
    provider: &Provider,
    body: &Value,
    streams: bool,
    timeout: Duration,
) -> Result<ChatReply, ProviderError> {
    let name = provider.name().to_string();
    let path = provider.api_path("messages");
    if streams {
        let up = provider.post_stream(client, &path, body, timeout).await?;
        return Ok(ChatReply::Events(stream::anthropic_events(up, name)));
    }
    let answer = provider.post_json(client, &path, body, timeout).await?;
    let message: MessageResponse = serde_json::from_value(answer).map_err(|e| protocol(&name, "not a message", e))?;
    Ok(ChatReply::Answer(Answer::from(message)))
}

fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true)
}

/// An OpenAI request passed through to an OpenAI-style provider (`completions`, `embeddings`;
/// Anthropic's API has neither). Streams always ask for usage upstream; the client sees it only
/// if it asked.
pub(crate) async fn openai_other(
    client: &reqwest::Client,
    provider: &Provider,
    path: &str,
    mut body: Map<String, Value>,
    timeout: Duration,
) -> Result<Reply, ProviderError> {
    let name = provider.name().to_string();
    if provider.config.kind.is_anthropic() {
        return Err(ProviderError::Unsupported {
            field: "model".into(),
            backend: name,
            message: format!("Anthropic's API has no /v1/{path}"),
        });
    }
    body.remove("keep_alive");
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = include_usage(&body);
        body.insert("stream_options".into(), body_of(&StreamOptions { include_usage: true }));
        let up = provider.post_stream(client, path, &Value::Object(body), timeout).await?;
        return Ok(Reply::Stream(stream::passthrough(up, name, include_usage)));
    }
    let answer = provider.post_json(client, path, &Value::Object(body), timeout).await?;
    let usage = stream::openai_usage(&answer);
    Ok(Reply::Json { body: answer, usage })
}
