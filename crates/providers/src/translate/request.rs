//! Request bodies across APIs: an OpenAI chat request as an Anthropic Messages request, and back.
//! Anything the target cannot express is a typed error naming the field, never dropped.

use mlx_manager_core::ProviderKind;
use serde_json::{json, Map, Value};

use crate::error::ProviderError;

fn unsupported(field: &str, backend: &str, message: &str) -> ProviderError {
    ProviderError::Unsupported { field: field.to_string(), backend: backend.to_string(), message: message.to_string() }
}

/// A value that asks for nothing (so sending it is the same as leaving it out).
fn is_neutral(key: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => match key {
            "n" => n.as_f64() == Some(1.0),
            _ => n.as_f64() == Some(0.0),
        },
        _ => false,
    }
}

/// The text of a string or an array of `{"type": "text", "text": …}` parts/blocks.
fn text_of(v: &Value, field: &str, backend: &str) -> Result<String, ProviderError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (i, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => return Err(unsupported(&format!("{field}[{i}]"), backend, "only text content is translated")),
                }
            }
            Ok(text)
        }
        _ => Err(unsupported(field, backend, "must be a string or an array of text parts")),
    }
}

/// An OpenAI `/v1/chat/completions` body as an Anthropic `/v1/messages` body.
pub fn chat_to_messages(body: &Map<String, Value>, backend: &str) -> Result<Value, ProviderError> {
    const PASSED: &[&str] = &[
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "stream",
        "stream_options",
        "user",
    ];
    for (k, v) in body {
        if !PASSED.contains(&k.as_str()) && !is_neutral(k, v) {
            return Err(unsupported(k, backend, "the Anthropic Messages API has no equivalent"));
        }
    }
    let mut system = Vec::new();
    let mut messages = Vec::new();
    let list = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, m) in list.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let text = text_of(m.get("content").unwrap_or(&Value::Null), &format!("messages[{i}].content"), backend)?;
        match role {
            "system" | "developer" => system.push(text),
            "user" | "assistant" => {
                if m.get("tool_calls").is_some_and(|t| !t.is_null()) {
                    return Err(unsupported(
                        &format!("messages[{i}].tool_calls"),
                        backend,
                        "tool calls are not translated",
                    ));
                }
                messages.push(json!({"role": role, "content": text}));
            }
            other => {
                return Err(unsupported(
                    &format!("messages[{i}].role"),
                    backend,
                    &format!("role `{other}` is not translated"),
                ))
            }
        }
    }
    let max_tokens = body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).cloned();
    let mut out = Map::new();
    out.insert("model".into(), body.get("model").cloned().unwrap_or(Value::Null));
    out.insert("max_tokens".into(), max_tokens.filter(|v| !v.is_null()).unwrap_or(json!(4096)));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(out))
}

/// An Anthropic `/v1/messages` body as an OpenAI `/v1/chat/completions` body.
pub fn messages_to_chat(body: &Map<String, Value>, kind: ProviderKind, backend: &str) -> Result<Value, ProviderError> {
    const PASSED: &[&str] = &[
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
    ];
    for (k, v) in body {
        if !PASSED.contains(&k.as_str()) && !is_neutral(k, v) {
            return Err(unsupported(k, backend, "the OpenAI Chat Completions API has no equivalent"));
        }
    }
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        messages.push(json!({"role": "system", "content": text_of(system, "system", backend)?}));
    }
    let list = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, m) in list.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(unsupported(&format!("messages[{i}].role"), backend, "must be `user` or `assistant`"));
        }
        let text = text_of(m.get("content").unwrap_or(&Value::Null), &format!("messages[{i}].content"), backend)?;
        messages.push(json!({"role": role, "content": text}));
    }
    let mut out = Map::new();
    out.insert("model".into(), body.get("model").cloned().unwrap_or(Value::Null));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(v) = body.get("max_tokens") {
        out.insert("max_tokens".into(), v.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = body.get("top_k").filter(|v| !is_neutral("top_k", v)) {
        if kind == ProviderKind::Openai {
            return Err(unsupported("top_k", backend, "OpenAI's API has no top_k"));
        }
        out.insert("top_k".into(), v.clone());
    }
    if let Some(Value::Array(stop)) = body.get("stop_sequences") {
        if !stop.is_empty() {
            out.insert("stop".into(), Value::Array(stop.clone()));
        }
    }
    if let Some(user) = body.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        out.insert("user".into(), json!(user));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}
