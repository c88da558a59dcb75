//! Streams across APIs: upstream server-sent events in, the client's own framing out (OpenAI
//! `data:` chunks ending in `[DONE]`, or Anthropic's named events), with usage reported on the
//! side for the audit log. An upstream error event, or a stream that ends early, is an error item.

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::response::{anthropic_usage, chunk, created, finish_reason, openai_usage, stop_reason};
use crate::error::ProviderError;
use crate::upstream::{UpEvent, UpStream};
use crate::{ReplyStream, SseEvent, StreamItem, Usage};

/// Turns upstream events into client items; `true` when the answer is complete.
pub(crate) trait Convert: Send + 'static {
    fn on(&mut self, ev: UpEvent) -> Result<(Vec<StreamItem>, bool), ProviderError>;
}

pub(crate) fn drive(mut up: UpStream, mut convert: impl Convert, provider: String) -> ReplyStream {
    Box::pin(async_stream::stream! {
        while let Some(ev) = up.next().await {
            match ev.and_then(|e| convert.on(e)) {
                Ok((items, done)) => {
                    for item in items {
                        yield Ok(item);
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
        yield Err(ProviderError::Protocol { provider, message: "the stream ended before the answer was complete".into() });
    })
}

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

fn data(v: &Value) -> StreamItem {
    StreamItem::Event(SseEvent { event: None, data: v.to_string() })
}

fn named(name: &str, v: Value) -> StreamItem {
    StreamItem::Event(SseEvent { event: Some(name.to_string()), data: v.to_string() })
}

/// OpenAI chunks passed through; the usage chunk (always requested upstream) is forwarded only
/// when the client asked for it.
pub(crate) struct OpenAiPassthrough {
    pub(crate) provider: String,
    pub(crate) include_usage: bool,
}

impl Convert for OpenAiPassthrough {
    fn on(&mut self, ev: UpEvent) -> Result<(Vec<StreamItem>, bool), ProviderError> {
        if ev.data.trim() == "[DONE]" {
            return Ok((vec![StreamItem::Event(SseEvent { event: None, data: "[DONE]".into() })], true));
        }
        let v = parse(&self.provider, &ev.data)?;
        if v.get("error").is_some() {
            return Err(upstream_error(&self.provider, &v));
        }
        let mut items = Vec::new();
        let usage = openai_usage(&v);
        let usage_only = usage.is_some() && v.get("choices").and_then(Value::as_array).is_none_or(|c| c.is_empty());
        if !usage_only || self.include_usage {
            items.push(StreamItem::Event(SseEvent { event: None, data: ev.data }));
        }
        if let Some(u) = usage {
            items.push(StreamItem::Usage(u));
        }
        Ok((items, false))
    }
}

/// Anthropic events passed through, usage read on the way.
pub(crate) struct AnthropicPassthrough {
    pub(crate) provider: String,
    pub(crate) prompt_tokens: u32,
}

impl Convert for AnthropicPassthrough {
    fn on(&mut self, ev: UpEvent) -> Result<(Vec<StreamItem>, bool), ProviderError> {
        let v = parse(&self.provider, &ev.data)?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(&ev.event).to_string();
        let mut items = Vec::new();
        match kind.as_str() {
            "error" => return Err(upstream_error(&self.provider, &v)),
            "message_start" => {
                self.prompt_tokens =
                    v.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0) as u32
            }
            "message_delta" => {
                let mut u = anthropic_usage(&v).unwrap_or_default();
                if u.prompt_tokens == 0 {
                    u.prompt_tokens = self.prompt_tokens;
                }
                items.push(StreamItem::Usage(u));
            }
            _ => {}
        }
        let name = if ev.event.is_empty() || ev.event == "message" { kind.clone() } else { ev.event };
        items.insert(0, StreamItem::Event(SseEvent { event: Some(name), data: ev.data }));
        Ok((items, kind == "message_stop"))
    }
}

/// Anthropic events in, OpenAI chunks out.
pub(crate) struct AnthropicToOpenAi {
    pub(crate) provider: String,
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) include_usage: bool,
    pub(crate) created: i64,
    pub(crate) usage: Usage,
    pub(crate) finish: &'static str,
}

impl AnthropicToOpenAi {
    pub(crate) fn new(provider: String, id: String, model: String, include_usage: bool) -> Self {
        AnthropicToOpenAi {
            provider,
            id,
            model,
            include_usage,
            created: created(),
            usage: Usage::default(),
            finish: "stop",
        }
    }
}

impl Convert for AnthropicToOpenAi {
    fn on(&mut self, ev: UpEvent) -> Result<(Vec<StreamItem>, bool), ProviderError> {
        let v = parse(&self.provider, &ev.data)?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(&ev.event);
        let c = |delta: Value, finish: Option<&str>| data(&chunk(&self.id, self.created, &self.model, delta, finish));
        Ok(match kind {
            "error" => return Err(upstream_error(&self.provider, &v)),
            "message_start" => {
                self.usage.prompt_tokens =
                    v.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0) as u32;
                (vec![c(json!({"role": "assistant", "content": ""}), None)], false)
            }
            "content_block_delta" => match v.pointer("/delta/text").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => (vec![c(json!({"content": t}), None)], false),
                _ => (vec![], false),
            },
            "message_delta" => {
                self.finish = finish_reason(v.pointer("/delta/stop_reason").and_then(Value::as_str));
                let u = anthropic_usage(&v).unwrap_or_default();
                self.usage.completion_tokens = u.completion_tokens;
                if u.prompt_tokens > 0 {
                    self.usage.prompt_tokens = u.prompt_tokens;
                }
                (vec![], false)
            }
            "message_stop" => {
                let mut items = vec![c(json!({}), Some(self.finish))];
                let u = self.usage;
                if self.include_usage {
                    items.push(data(&json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": {"prompt_tokens": u.prompt_tokens,
                        "completion_tokens": u.completion_tokens, "total_tokens": u.prompt_tokens + u.completion_tokens}})));
                }
                items.push(StreamItem::Usage(u));
                items.push(StreamItem::Event(SseEvent { event: None, data: "[DONE]".into() }));
                (items, true)
            }
            _ => (vec![], false),
        })
    }
}

/// OpenAI chunks in, Anthropic events out.
pub(crate) struct OpenAiToAnthropic {
    pub(crate) provider: String,
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) started: bool,
    pub(crate) usage: Usage,
    pub(crate) finish: Option<String>,
}

impl OpenAiToAnthropic {
    pub(crate) fn new(provider: String, id: String, model: String) -> Self {
        OpenAiToAnthropic { provider, id, model, started: false, usage: Usage::default(), finish: None }
    }

    fn start(&mut self, items: &mut Vec<StreamItem>) {
        if self.started {
            return;
        }
        self.started = true;
        items.push(named(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ));
        items.push(named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        items.push(named("ping", json!({"type": "ping"})));
    }
}

impl Convert for OpenAiToAnthropic {
    fn on(&mut self, ev: UpEvent) -> Result<(Vec<StreamItem>, bool), ProviderError> {
        let mut items = Vec::new();
        self.start(&mut items);
        if ev.data.trim() == "[DONE]" {
            let u = self.usage;
            items.push(named("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
            items.push(named(
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
                "usage": {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}}),
            ));
            items.push(named("message_stop", json!({"type": "message_stop"})));
            items.push(StreamItem::Usage(u));
            return Ok((items, true));
        }
        let v = parse(&self.provider, &ev.data)?;
        if v.get("error").is_some() {
            return Err(upstream_error(&self.provider, &v));
        }
        if let Some(u) = openai_usage(&v) {
            self.usage = u;
        }
        if let Some(choice) = v.pointer("/choices/0") {
            if let Some(t) = choice.pointer("/delta/content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                items.push(named(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
                ));
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(f.to_string());
            }
        }
        Ok((items, false))
    }
}
