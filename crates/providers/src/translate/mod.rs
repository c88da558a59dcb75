//! Serving one request on one provider: pass through when the provider speaks the client's API,
//! translate both ways (bodies, answers, streams, usage, finish/stop reasons) when it does not.

mod request;
mod response;
mod stream;

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::ProviderError;
use crate::upstream::Provider;
use crate::Reply;

pub use request::{chat_to_messages, messages_to_chat};

fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true)
}

fn wants_stream(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool) == Some(true)
}

/// An OpenAI chat request (`model` already the backend's name) on `provider`; the answer is in
/// OpenAI's format. `id` names the answer when it is translated.
pub(crate) async fn openai_chat(
    client: &reqwest::Client,
    provider: &Provider,
    body: Map<String, Value>,
    id: &str,
    timeout: Duration,
) -> Result<Reply, ProviderError> {
    if !provider.config.kind.is_anthropic() {
        return openai_other(client, provider, "chat/completions", body, timeout).await;
    }
    let name = provider.name().to_string();
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    let upstream = chat_to_messages(&body, &name)?;
    let path = provider.api_path("messages");
    if wants_stream(&body) {
        let up = provider.post_stream(client, &path, &upstream, timeout).await?;
        let convert = stream::AnthropicToOpenAi::new(name.clone(), id.to_string(), model, include_usage(&body));
        return Ok(Reply::Stream(stream::drive(up, convert, name)));
    }
    let answer = provider.post_json(client, &path, &upstream, timeout).await?;
    let usage = response::anthropic_usage(&answer).unwrap_or_default();
    Ok(Reply::Json { body: response::message_to_completion(&answer, id, &model), usage })
}

/// An Anthropic Messages request on `provider`; the answer is in Anthropic's format.
pub(crate) async fn anthropic_messages(
    client: &reqwest::Client,
    provider: &Provider,
    body: Map<String, Value>,
    id: &str,
    timeout: Duration,
) -> Result<Reply, ProviderError> {
    let name = provider.name().to_string();
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    let stream = wants_stream(&body);
    if provider.config.kind.is_anthropic() {
        let path = provider.api_path("messages");
        let body = Value::Object(body);
        if stream {
            let up = provider.post_stream(client, &path, &body, timeout).await?;
            let convert = stream::AnthropicPassthrough { provider: name.clone(), prompt_tokens: 0 };
            return Ok(Reply::Stream(stream::drive(up, convert, name)));
        }
        let answer = provider.post_json(client, &path, &body, timeout).await?;
        let usage = response::anthropic_usage(&answer).unwrap_or_default();
        return Ok(Reply::Json { body: answer, usage });
    }
    let upstream = messages_to_chat(&body, provider.config.kind, &name)?;
    if stream {
        let up = provider.post_stream(client, "chat/completions", &upstream, timeout).await?;
        let convert = stream::OpenAiToAnthropic::new(name.clone(), id.to_string(), model);
        return Ok(Reply::Stream(stream::drive(up, convert, name)));
    }
    let answer = provider.post_json(client, "chat/completions", &upstream, timeout).await?;
    let usage = response::openai_usage(&answer).unwrap_or_default();
    Ok(Reply::Json { body: response::completion_to_message(&answer, id, &model), usage })
}

/// An OpenAI request passed through to an OpenAI-style provider (`chat/completions`,
/// `completions`, `embeddings`; Anthropic's API has none of them). Streams always ask for usage
/// upstream (the audit log needs it); the client sees it only if it asked.
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
    if wants_stream(&body) {
        let include_usage = include_usage(&body);
        body.insert("stream_options".into(), json!({"include_usage": true}));
        let up = provider.post_stream(client, path, &Value::Object(body), timeout).await?;
        let convert = stream::OpenAiPassthrough { provider: name.clone(), include_usage };
        return Ok(Reply::Stream(stream::drive(up, convert, name)));
    }
    let answer = provider.post_json(client, path, &Value::Object(body), timeout).await?;
    let usage = response::openai_usage(&answer).unwrap_or_default();
    Ok(Reply::Json { body: answer, usage })
}
