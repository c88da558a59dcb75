//! `POST /v1/messages`: the Anthropic Messages API over the local engine.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mlx_manager_engine::{ChatMessage, FinishReason, GenerationEvent, GenerationParams, Prompt, SamplingParams};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, FieldError, Flavor};
use crate::extract::{invalid, parse_model_request, JsonBody};
use crate::middleware::RequestContext;
use crate::run::{ensure_loaded, Deadline, Next, Run};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text { text: String },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<serde_json::Value>),
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Content,
}

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    /// How long the model may stay loaded while idle after this request.
    #[serde(default)]
    keep_alive: Option<serde_json::Value>,
    max_tokens: u32,
    messages: Vec<InMessage>,
    system: Option<Content>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: bool,
    #[allow(dead_code)]
    metadata: Option<serde_json::Value>,
}

const SUPPORTED: &[&str] = &[
    "model",
    "keep_alive",
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
const UNSUPPORTED: &[(&str, &str)] = &[
    ("tools", "tool use is not implemented yet"),
    ("tool_choice", "tool use is not implemented yet"),
    ("thinking", "extended thinking is not supported"),
];

fn text_of(content: Content, field: &str) -> Result<String, ApiError> {
    match content {
        Content::Text(t) => Ok(t),
        Content::Blocks(blocks) => {
            let mut text = String::new();
            for (i, block) in blocks.into_iter().enumerate() {
                match serde_json::from_value::<Block>(block) {
                    Ok(Block::Text { text: t }) => text.push_str(&t),
                    Err(_) => return Err(invalid(&format!("{field}[{i}]"), "only text content blocks are supported")),
                }
            }
            Ok(text)
        }
    }
}

fn stop_reason(reason: FinishReason, stop: &Option<String>) -> &'static str {
    match (reason, stop) {
        (FinishReason::Length, _) => "max_tokens",
        (FinishReason::Stop, Some(_)) => "stop_sequence",
        (FinishReason::Stop, None) => "end_turn",
    }
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// The handler.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    crate::routing::dispatch(crate::routing::Api::Messages, state, ctx, body).await
}

/// Served by the local engine.
pub(crate) async fn local(
    state: Arc<AppState>,
    ctx: RequestContext,
    body: serde_json::Map<String, serde_json::Value>,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let req: MessagesRequest = parse_model_request(&ctx.record, body, SUPPORTED, UNSUPPORTED)?;
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    if req.messages.is_empty() {
        return Err(invalid("messages", "must contain at least one message"));
    }
    let mut chat = Vec::new();
    if let Some(system) = req.system {
        chat.push(ChatMessage::new("system", text_of(system, "system")?));
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        if m.role != "user" && m.role != "assistant" {
            return Err(invalid(&format!("messages[{i}].role"), "must be `user` or `assistant`"));
        }
        chat.push(ChatMessage::new(m.role, text_of(m.content, &format!("messages[{i}].content"))?));
    }
    let mut errors = Vec::new();
    let mut check = |ok: bool, field: &str, message: &str| {
        if !ok {
            errors.push(FieldError { field: field.into(), message: message.into() });
        }
    };
    let temperature = req.temperature.unwrap_or(1.0);
    check(temperature.is_finite() && (0.0..=1.0).contains(&temperature), "temperature", "must be between 0 and 1");
    let top_p = req.top_p.unwrap_or(1.0);
    check(top_p.is_finite() && top_p > 0.0 && top_p <= 1.0, "top_p", "must be in (0, 1]");
    let info = ensure_loaded(&state, &req.model, deadline, keep_alive).await?;
    let cap = info.context_length.unwrap_or(1_000_000) as u32;
    check(req.max_tokens >= 1 && req.max_tokens <= cap, "max_tokens", &format!("must be between 1 and {cap}"));
    let stop = req.stop_sequences.unwrap_or_default();
    check(stop.iter().all(|s| !s.is_empty()), "stop_sequences", "must not contain empty strings");
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let params = GenerationParams {
        max_tokens: req.max_tokens as usize,
        sampling: SamplingParams { temperature, top_p, top_k: req.top_k.unwrap_or(0), ..SamplingParams::default() },
        stop,
        stop_token_ids: Vec::new(),
        logprobs: false,
    };
    let prompt = Prompt::Chat { messages: chat, tools: None, template_kwargs: Default::default() };
    let mut run = Run::start(&state, &req.model, prompt, params, deadline).await?;
    let id = format!("msg_{}", ctx.request_id.trim_start_matches("req_"));
    let model = req.model;

    if !req.stream {
        let c = run.collect().await?;
        ctx.record.set_tokens(c.usage.prompt_tokens, c.usage.completion_tokens);
        ctx.record.succeed();
        return Ok(Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": c.text}],
            "stop_reason": stop_reason(c.finish_reason, &c.stop_sequence), "stop_sequence": c.stop_sequence,
            "usage": {"input_tokens": c.usage.prompt_tokens, "output_tokens": c.usage.completion_tokens, "cache_read_input_tokens": c.usage.cached_tokens},
        }))
        .into_response());
    }

    let record = ctx.record.clone();
    let request_id = ctx.request_id.clone();
    let input_tokens = run.prompt_tokens;
    let stream = async_stream::stream! {
        yield Ok::<_, Infallible>(event("message_start", json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})));
        yield Ok(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        yield Ok(event("ping", json!({"type": "ping"})));
        let mut generated = 0usize;
        loop {
            match run.next().await {
                Next::Event(GenerationEvent::Started { .. }) => {}
                Next::Event(GenerationEvent::Token { text, .. }) => {
                    generated += 1;
                    if !text.is_empty() {
                        yield Ok(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})));
                    }
                }
                Next::Event(GenerationEvent::Done { text, finish_reason, stop_sequence, usage }) => {
                    if !text.is_empty() {
                        yield Ok(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})));
                    }
                    yield Ok(event("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
                    yield Ok(event("message_delta", json!({"type": "message_delta",
                        "delta": {"stop_reason": stop_reason(finish_reason, &stop_sequence), "stop_sequence": stop_sequence},
                        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens, "cache_read_input_tokens": usage.cached_tokens}})));
                    yield Ok(event("message_stop", json!({"type": "message_stop"})));
                    record.set_tokens(usage.prompt_tokens, usage.completion_tokens);
                    record.succeed();
                    break;
                }
                Next::Error(e) => {
                    record.set_tokens(0, generated);
                    record.fail(&e);
                    yield Ok(event("error", e.body(Flavor::Anthropic, "/v1/messages", &request_id)));
                    break;
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
