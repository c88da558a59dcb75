//! `POST /v1/chat/completions`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mlx_manager_engine::chat::{self, TemplateKwargs};
use mlx_manager_engine::{ChatMessage, GenerationEvent, Prompt};
use serde::Deserialize;
use serde_json::json;

use super::params::{finish_reason, now, Sampling, StreamOptions};
use crate::error::{ApiError, FieldError, Flavor};
use crate::extract::{invalid, parse_model_request, JsonBody};
use crate::middleware::RequestContext;
use crate::run::{Deadline, Next, Run};
use crate::state::AppState;

/// One content part.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part {
    Text { text: String },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<serde_json::Value>),
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_calls: Option<serde_json::Value>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    /// How long the model may stay loaded while idle after this request.
    #[serde(default)]
    keep_alive: Option<serde_json::Value>,
    #[serde(flatten)]
    sampling: Sampling,
    messages: Vec<InMessage>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    logprobs: bool,
    top_logprobs: Option<u32>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    #[allow(dead_code)]
    user: Option<String>,
    /// Extra chat template variables (vLLM's and SGLang's name), e.g. `{"enable_thinking": false}`.
    #[serde(default)]
    chat_template_kwargs: Option<serde_json::Value>,
    /// gpt-oss style reasoning effort, passed to the template as `reasoning_effort`.
    #[serde(default)]
    reasoning_effort: Option<serde_json::Value>,
}

const SUPPORTED: &[&str] = &[
    "model",
    "keep_alive",
    "messages",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logprobs",
    "top_logprobs",
    "stream",
    "stream_options",
    "user",
    "chat_template_kwargs",
    "reasoning_effort",
];

/// Parameters of the OpenAI API we know but do not implement yet.
pub(crate) const UNSUPPORTED: &[(&str, &str)] = &[
    ("tools", "tool calling is not implemented yet"),
    ("tool_choice", "tool calling is not implemented yet"),
    ("parallel_tool_calls", "tool calling is not implemented yet"),
    ("functions", "function calling is not implemented"),
    ("function_call", "function calling is not implemented"),
    ("response_format", "structured output is not implemented yet"),
    ("logit_bias", "logit_bias is not implemented"),
    ("audio", "audio output is not supported"),
    ("modalities", "only text is supported"),
    ("prediction", "predicted outputs are not supported"),
    ("suffix", "suffix is not supported"),
    ("best_of", "best_of is not supported"),
];

fn messages(input: Vec<InMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    if input.is_empty() {
        return Err(invalid("messages", "must contain at least one message"));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, m) in input.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "developer" => "system".to_string(),
            "system" | "user" | "assistant" | "tool" => m.role,
            other => return Err(invalid(&format!("messages[{i}].role"), format!("unknown role `{other}`"))),
        };
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.into_iter().enumerate() {
                    match serde_json::from_value::<Part>(part) {
                        Ok(Part::Text { text: t }) => text.push_str(&t),
                        Err(_) => {
                            return Err(invalid(
                                &format!("messages[{i}].content[{j}]"),
                                "only text content parts are supported",
                            ))
                        }
                    }
                }
                text
            }
        };
        out.push(ChatMessage { role, content, name: m.name, tool_calls: m.tool_calls, tool_call_id: m.tool_call_id });
    }
    Ok(out)
}

const REASONING_EFFORTS: [&str; 3] = ["low", "medium", "high"];

/// The chat template's extra variables: `chat_template_kwargs` (a JSON object, none of the
/// engine's [`chat::RESERVED`] variables, which the request itself sets), plus
/// `reasoning_effort` as the template variable of that name unless `chat_template_kwargs` sets
/// it. `null` is the same as leaving either out.
fn template_kwargs(
    chat_template_kwargs: Option<serde_json::Value>,
    reasoning_effort: Option<serde_json::Value>,
) -> Result<TemplateKwargs, ApiError> {
    let mut kwargs = match chat_template_kwargs {
        None | Some(serde_json::Value::Null) => TemplateKwargs::new(),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err(invalid("chat_template_kwargs", "must be a JSON object of template variables")),
    };
    let reserved: Vec<FieldError> = kwargs
        .keys()
        .filter(|k| chat::RESERVED.contains(&k.as_str()))
        .map(|k| FieldError {
            field: format!("chat_template_kwargs.{k}"),
            message: format!("`{k}` is set by the request itself, not by a template variable"),
        })
        .collect();
    if !reserved.is_empty() {
        return Err(ApiError::Validation(reserved));
    }
    match reasoning_effort {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(effort)) if REASONING_EFFORTS.contains(&effort.as_str()) => {
            kwargs.entry("reasoning_effort").or_insert(serde_json::Value::String(effort));
        }
        Some(_) => return Err(invalid("reasoning_effort", "must be \"low\", \"medium\" or \"high\"")),
    }
    Ok(kwargs)
}

fn chunk(
    id: &str,
    created: i64,
    model: &str,
    delta: serde_json::Value,
    finish: Option<&str>,
    logprobs: serde_json::Value,
) -> Event {
    let body = json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
    });
    Event::default().data(body.to_string())
}

fn logprob_entry(text: &str, logprob: f32) -> serde_json::Value {
    json!({"token": text, "logprob": logprob, "bytes": text.as_bytes(), "top_logprobs": []})
}

/// The handler.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    crate::routing::dispatch(crate::routing::Api::Chat, state, ctx, body).await
}

/// Served by the local engine.
pub(crate) async fn local(
    state: Arc<AppState>,
    ctx: RequestContext,
    body: serde_json::Map<String, serde_json::Value>,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_model_request(&ctx.record, body, SUPPORTED, UNSUPPORTED)?;
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    if req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(invalid("top_logprobs", "only the chosen token's logprob is supported (top_logprobs must be 0)"));
    }
    if req.stream_options.is_some() && !req.stream {
        return Err(invalid("stream_options", "only allowed when stream is true"));
    }
    let messages = messages(req.messages)?;
    let template_kwargs = template_kwargs(req.chat_template_kwargs, req.reasoning_effort)?;
    let info = crate::run::ensure_loaded(&state, &req.model, deadline, keep_alive).await?;
    let max_tokens =
        req.max_completion_tokens.or(req.max_tokens).unwrap_or(2048.min(info.context_length.unwrap_or(2048) as u32));
    let params = req.sampling.into_params(max_tokens, req.logprobs, info.context_length)?;
    let prompt = Prompt::Chat { messages, tools: None, template_kwargs };
    let mut run = Run::start(&state, &req.model, prompt, params, deadline).await?;
    let id = format!("chatcmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let created = now();
    let model = req.model;
    let want_logprobs = req.logprobs;

    if !req.stream {
        let c = run.collect().await?;
        ctx.record.set_tokens(c.usage.prompt_tokens, c.usage.completion_tokens);
        ctx.record.succeed();
        let logprobs = if want_logprobs {
            json!({"content": c.tokens.iter().map(|(_, t, lp)| logprob_entry(t, lp.unwrap_or(0.0))).collect::<Vec<_>>()})
        } else {
            serde_json::Value::Null
        };
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text}, "logprobs": logprobs, "finish_reason": finish_reason(c.finish_reason)}],
            "usage": {"prompt_tokens": c.usage.prompt_tokens, "completion_tokens": c.usage.completion_tokens, "total_tokens": c.usage.prompt_tokens + c.usage.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": c.usage.cached_tokens}},
        }))
        .into_response());
    }

    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let record = ctx.record.clone();
    let (request_id, path) = (ctx.request_id.clone(), "/v1/chat/completions");
    let stream = async_stream::stream! {
        yield Ok::<_, Infallible>(chunk(&id, created, &model, json!({"role": "assistant", "content": ""}), None, serde_json::Value::Null));
        let mut completion = 0usize;
        loop {
            match run.next().await {
                Next::Event(GenerationEvent::Started { .. }) => {}
                Next::Event(GenerationEvent::Token { text, logprob, .. }) => {
                    completion += 1;
                    let lp = match (want_logprobs, logprob) {
                        (true, Some(lp)) => json!({"content": [logprob_entry(&text, lp)]}),
                        _ => serde_json::Value::Null,
                    };
                    if !text.is_empty() || want_logprobs {
                        yield Ok(chunk(&id, created, &model, json!({"content": text}), None, lp));
                    }
                }
                Next::Event(GenerationEvent::Done { text, finish_reason: reason, usage, .. }) => {
                    if !text.is_empty() {
                        yield Ok(chunk(&id, created, &model, json!({"content": text}), None, serde_json::Value::Null));
                    }
                    yield Ok(chunk(&id, created, &model, json!({}), Some(finish_reason(reason)), serde_json::Value::Null));
                    if include_usage {
                        let body = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens}}});
                        yield Ok(Event::default().data(body.to_string()));
                    }
                    record.set_tokens(usage.prompt_tokens, usage.completion_tokens);
                    record.succeed();
                    yield Ok(Event::default().data("[DONE]"));
                    break;
                }
                Next::Error(e) => {
                    record.set_tokens(0, completion);
                    record.fail(&e);
                    yield Ok(Event::default().data(e.body(Flavor::OpenAi, path, &request_id).to_string()));
                    break;
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
