//! Upstream server-sent events: OpenAI chunks and Anthropic events decoded into API-neutral
//! events (with the typed layer's decoders), or OpenAI completions chunks passed through. An
//! upstream error event, or a stream that ends before the answer does, is an error item.

use futures_util::StreamExt;
use mlx_manager_api::anthropic::StreamEvent;
use mlx_manager_api::encode::{AnthropicDecoder, OpenAiDecoder};
use mlx_manager_api::openai::ChatChunk;
use mlx_manager_api::Event;
use serde_json::Value;

use crate::error::ProviderError;
use crate::upstream::{UpEvent, UpStream};
use crate::{EventStream, ReplyStream, SseEvent, StreamItem, Usage};

fn parse(provider: &str, data: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(data).map_err(|e| ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("an event is not JSON: {e}"),
    })
}

fn upstream_error(provider: &str, v: &Value) -> ProviderError {
    let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error event without a message");
    let status = v.get("status").and_then(Value::as_u64).unwrap_or(502) as u16;
    ProviderError::UpstreamStatus {
        provider: provider.to_string(),
        status,
        message: message.to_string(),
        retry_after: None,
    }
}

fn ended_early(provider: &str) -> ProviderError {
    ProviderError::Protocol {
        provider: provider.to_string(),
        message: "the stream ended before the answer was complete".into(),
    }
}

fn typed<T: serde::de::DeserializeOwned>(provider: &str, v: Value) -> Result<T, ProviderError> {
    serde_json::from_value(v).map_err(|e| ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("an event does not have the API's shape: {e}"),
    })
}

/// Upstream events → API-neutral events through `decode`, until the answer's `Done`; an error
/// (from upstream or decoding) or an upstream that stops first ends the stream with an `Err`.
fn decoded(
    mut up: UpStream,
    provider: String,
    mut decode: impl FnMut(UpEvent) -> Result<Vec<Event>, ProviderError> + Send + 'static,
) -> EventStream {
    Box::pin(async_stream::stream! {
        while let Some(ev) = up.next().await {
            match ev.and_then(&mut decode) {
                Ok(events) => {
                    let done = events.iter().any(|e| matches!(e, Event::Done { .. }));
                    for e in events {
                        yield Ok(e);
                    }
                    if done {
                        return;
                    }
                }
                Err(e) => {
                    yield Err(e);
                    return;
                }
            }
        }
        yield Err(ended_early(&provider));
    })
}

/// OpenAI chat chunks → events; `[DONE]` ends the answer.
pub(crate) fn openai_events(up: UpStream, provider: String) -> EventStream {
    let mut decoder = OpenAiDecoder::new();
    let name = provider.clone();
    decoded(up, provider, move |ev| {
        if ev.data.trim() == "[DONE]" {
            return Ok(decoder.finish());
        }
        let v = parse(&name, &ev.data)?;
        if v.get("error").is_some() {
            return Err(upstream_error(&name, &v));
        }
        Ok(decoder.on(typed::<ChatChunk>(&name, v)?))
    })
}

/// Anthropic events → events; `message_stop` ends the answer. Event types this version does not
/// know are skipped.
pub(crate) fn anthropic_events(up: UpStream, provider: String) -> EventStream {
    let mut decoder = AnthropicDecoder::new();
    let name = provider.clone();
    decoded(up, provider, move |ev| {
        let v = parse(&name, &ev.data)?;
        if v.get("type").and_then(Value::as_str) == Some("error") {
            return Err(upstream_error(&name, &v));
        }
        match serde_json::from_value::<StreamEvent>(v) {
            Ok(event) => decoder.on(event).map_err(|e| ProviderError::UpstreamStatus {
                provider: name.clone(),
                status: 502,
                message: format!("{}: {}", e.kind, e.message),
                retry_after: None,
            }),
            Err(e) => {
                tracing::debug!(provider = %name, error = %e, "skipping an unknown stream event");
                Ok(Vec::new())
            }
        }
    })
}

fn count(v: Option<&Value>) -> u32 {
    v.and_then(Value::as_u64).unwrap_or(0) as u32
}

/// Usage of an OpenAI answer or chunk.
pub(crate) fn openai_usage(v: &Value) -> Usage {
    let u = v.get("usage").filter(|u| u.is_object());
    Usage {
        prompt_tokens: count(u.and_then(|u| u.get("prompt_tokens"))),
        completion_tokens: count(u.and_then(|u| u.get("completion_tokens"))),
    }
}

/// OpenAI completions chunks passed through; the usage chunk (always requested upstream) is
/// forwarded only when the client asked for it.
pub(crate) fn passthrough(mut up: UpStream, provider: String, include_usage: bool) -> ReplyStream {
    Box::pin(async_stream::stream! {
        while let Some(ev) = up.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            if ev.data.trim() == "[DONE]" {
                yield Ok(StreamItem::Event(SseEvent { event: None, data: "[DONE]".into() }));
                return;
            }
            let v = match parse(&provider, &ev.data) {
                Ok(v) if v.get("error").is_some() => {
                    yield Err(upstream_error(&provider, &v));
                    return;
                }
                Ok(v) => v,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            let has_usage = v.get("usage").is_some_and(Value::is_object);
            let usage_only = has_usage && v.get("choices").and_then(Value::as_array).is_none_or(|c| c.is_empty());
            if !usage_only || include_usage {
                yield Ok(StreamItem::Event(SseEvent { event: None, data: ev.data }));
            }
            if has_usage {
                yield Ok(StreamItem::Usage(openai_usage(&v)));
            }
        }
        yield Err(ended_early(&provider));
    })
}
