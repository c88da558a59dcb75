//! Whole (non-streamed) answers across APIs, with usage and finish/stop reasons mapped.

use serde_json::{json, Value};

use crate::Usage;

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub(crate) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn count(v: Option<&Value>) -> u32 {
    v.and_then(Value::as_u64).unwrap_or(0) as u32
}

/// Usage of an OpenAI answer or chunk.
pub(crate) fn openai_usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage { prompt_tokens: count(u.get("prompt_tokens")), completion_tokens: count(u.get("completion_tokens")) })
}

/// Usage of an Anthropic answer.
pub(crate) fn anthropic_usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage { prompt_tokens: count(u.get("input_tokens")), completion_tokens: count(u.get("output_tokens")) })
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// An Anthropic message as an OpenAI chat completion.
pub(crate) fn message_to_completion(msg: &Value, id: &str, requested_model: &str) -> Value {
    let text: String = msg
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let usage = anthropic_usage(msg).unwrap_or_default();
    json!({
        "id": id, "object": "chat.completion", "created": now(),
        "model": msg.get("model").and_then(Value::as_str).unwrap_or(requested_model),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null,
            "finish_reason": finish_reason(msg.get("stop_reason").and_then(Value::as_str))}],
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens},
    })
}

/// An OpenAI chat completion as an Anthropic message.
pub(crate) fn completion_to_message(c: &Value, id: &str, requested_model: &str) -> Value {
    let choice = c.pointer("/choices/0");
    let text = choice.and_then(|ch| ch.pointer("/message/content")).and_then(Value::as_str).unwrap_or("");
    let finish = choice.and_then(|ch| ch.get("finish_reason")).and_then(Value::as_str);
    let usage = openai_usage(c).unwrap_or_default();
    json!({
        "id": id, "type": "message", "role": "assistant",
        "model": c.get("model").and_then(Value::as_str).unwrap_or(requested_model),
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason(finish), "stop_sequence": null,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
    })
}

/// A chat completion chunk.
pub(crate) fn chunk(id: &str, created: i64, model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

pub(crate) fn created() -> i64 {
    now()
}
