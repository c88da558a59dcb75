//! `POST /v1/completions` (legacy text completions).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mlx_manager_engine::{GenerationEvent, Prompt};
use serde::Deserialize;
use serde_json::json;

use super::chat::UNSUPPORTED;
use super::params::{finish_reason, now, Sampling, StreamOptions};
use crate::error::{ApiError, Flavor};
use crate::extract::{invalid, parse_model_request, JsonBody};
use crate::middleware::RequestContext;
use crate::run::{ensure_loaded, Deadline, Next, Run};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptParam {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    /// How long the model may stay loaded while idle after this request.
    #[serde(default)]
    keep_alive: Option<serde_json::Value>,
    #[serde(flatten)]
    sampling: Sampling,
    prompt: PromptParam,
    max_tokens: Option<u32>,
    logprobs: Option<u32>,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    #[allow(dead_code)]
    user: Option<String>,
}

const SUPPORTED: &[&str] = &[
    "model",
    "keep_alive",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logprobs",
    "echo",
    "stream",
    "stream_options",
    "user",
];

/// The handler.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    crate::routing::dispatch(crate::routing::Api::Completions, state, ctx, body).await
}

/// Served by the local engine.
pub(crate) async fn local(
    state: Arc<AppState>,
    ctx: RequestContext,
    body: serde_json::Map<String, serde_json::Value>,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse_model_request(&ctx.record, body, SUPPORTED, UNSUPPORTED)?;
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    if req.logprobs.is_some_and(|n| n > 0) {
        return Err(invalid("logprobs", "only the chosen token's logprob is supported (logprobs must be 0)"));
    }
    if req.stream_options.is_some() && !req.stream {
        return Err(invalid("stream_options", "only allowed when stream is true"));
    }
    // (prompt, text to echo)
    let prompts: Vec<(Prompt, Option<String>)> = match req.prompt {
        PromptParam::Text(t) => vec![(Prompt::Text(t.clone()), Some(t))],
        PromptParam::Texts(v) => v.into_iter().map(|t| (Prompt::Text(t.clone()), Some(t))).collect(),
        PromptParam::Tokens(ids) => vec![(Prompt::Tokens(ids), None)],
        PromptParam::TokenLists(v) => v.into_iter().map(|ids| (Prompt::Tokens(ids), None)).collect(),
    };
    if prompts.is_empty() {
        return Err(invalid("prompt", "must not be empty"));
    }
    if req.echo && prompts.iter().any(|(_, text)| text.is_none()) {
        return Err(invalid("echo", "echo is only supported for text prompts"));
    }
    let info = ensure_loaded(&state, &req.model, deadline, keep_alive).await?;
    let want_logprobs = req.logprobs.is_some();
    let params = req.sampling.into_params(req.max_tokens.unwrap_or(16), want_logprobs, info.context_length)?;
    let id = format!("cmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let created = now();
    let model = req.model;
    let echo = req.echo;

    if !req.stream {
        let (mut choices, mut prompt_tokens, mut completion_tokens) = (Vec::new(), 0, 0);
        for (index, (prompt, text)) in prompts.into_iter().enumerate() {
            let c = Run::start(&state, &model, prompt, params.clone(), deadline).await?.collect().await?;
            prompt_tokens += c.usage.prompt_tokens;
            completion_tokens += c.usage.completion_tokens;
            let prefix = if echo { text.unwrap_or_default() } else { String::new() };
            let logprobs = if want_logprobs {
                json!({
                    "tokens": c.tokens.iter().map(|(_, t, _)| t.clone()).collect::<Vec<_>>(),
                    "token_logprobs": c.tokens.iter().map(|(_, _, lp)| lp.unwrap_or(0.0)).collect::<Vec<_>>(),
                    "top_logprobs": null, "text_offset": null,
                })
            } else {
                serde_json::Value::Null
            };
            choices.push(json!({"text": prefix + &c.text, "index": index, "logprobs": logprobs, "finish_reason": finish_reason(c.finish_reason)}));
        }
        ctx.record.set_tokens(prompt_tokens, completion_tokens);
        ctx.record.succeed();
        return Ok(Json(json!({
            "id": id, "object": "text_completion", "created": created, "model": model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }))
        .into_response());
    }

    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let first = Run::start(&state, &model, prompts[0].0.clone(), params.clone(), deadline).await?;
    let record = ctx.record.clone();
    let request_id = ctx.request_id.clone();
    let model_id = model.clone();
    let chunk = move |index: usize, text: &str, finish: Option<&str>| {
        let body = json!({"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": index, "logprobs": null, "finish_reason": finish}]});
        Event::default().data(body.to_string())
    };
    let stream = async_stream::stream! {
        let (mut prompt_tokens, mut completion_tokens) = (0, 0);
        let mut next_run = Some(first);
        for (index, (prompt, text)) in prompts.into_iter().enumerate() {
            let mut run = match next_run.take() {
                Some(run) => run,
                None => match Run::start(&state, &model_id, prompt, params.clone(), deadline).await {
                    Ok(run) => run,
                    Err(e) => {
                        record.fail(&e);
                        yield Ok::<_, Infallible>(Event::default().data(e.body(Flavor::OpenAi, "/v1/completions", &request_id).to_string()));
                        return;
                    }
                },
            };
            if echo {
                yield Ok(chunk(index, &text.unwrap_or_default(), None));
            }
            loop {
                match run.next().await {
                    Next::Event(GenerationEvent::Started { .. }) => {}
                    Next::Event(GenerationEvent::Token { text, .. }) => {
                        if !text.is_empty() {
                            yield Ok(chunk(index, &text, None));
                        }
                    }
                    Next::Event(GenerationEvent::Done { text, finish_reason: reason, usage, .. }) => {
                        yield Ok(chunk(index, &text, Some(finish_reason(reason))));
                        prompt_tokens += usage.prompt_tokens;
                        completion_tokens += usage.completion_tokens;
                        break;
                    }
                    Next::Error(e) => {
                        record.set_tokens(prompt_tokens, completion_tokens);
                        record.fail(&e);
                        yield Ok(Event::default().data(e.body(Flavor::OpenAi, "/v1/completions", &request_id).to_string()));
                        return;
                    }
                }
            }
        }
        record.set_tokens(prompt_tokens, completion_tokens);
        if include_usage {
            yield Ok(Event::default().data(json!({"object": "text_completion", "choices": [],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}}).to_string()));
        }
        record.succeed();
        yield Ok(Event::default().data("[DONE]"));
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
