//! `POST /v1/completions` (legacy text completions) on the local engine: one run per prompt,
//! each through the same event loop as chat, encoded as `text_completion` bodies and chunks.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use mlx_manager_api::openai::{Completion, CompletionChoice, CompletionLogprobs, CompletionRequest, TextOrTokens};
use mlx_manager_api::{Answer, Event, OpenAiUsage, Usage};
use mlx_manager_engine::{GenerationParams, Prompt};

use crate::error::{ApiError, Flavor};
use crate::local::events::{events, CallIds};
use crate::local::params::Sampling;
use crate::middleware::RequestContext;
use crate::run::{ensure_loaded, Deadline, Run};
use crate::state::AppState;

fn body(id: &str, created: i64, model: &str, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> Completion {
    Completion {
        id: id.to_string(),
        object: "text_completion".into(),
        created,
        model: model.to_string(),
        choices,
        usage: usage.map(|u| OpenAiUsage { prompt_tokens_details: None, ..u.into() }),
    }
}

fn add(total: &mut Usage, u: Usage) {
    total.prompt_tokens += u.prompt_tokens;
    total.completion_tokens += u.completion_tokens;
}

/// Serves `req` (checked by `check::completions`).
pub(crate) async fn serve(
    state: Arc<AppState>,
    ctx: RequestContext,
    req: CompletionRequest,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    // (prompt, text to echo)
    let prompts: Vec<(Prompt, Option<String>)> = match req.prompt {
        TextOrTokens::Text(t) => vec![(Prompt::Text(t.clone()), Some(t))],
        TextOrTokens::Texts(v) => v.into_iter().map(|t| (Prompt::Text(t.clone()), Some(t))).collect(),
        TextOrTokens::Tokens(ids) => vec![(Prompt::Tokens(ids), None)],
        TextOrTokens::TokenLists(v) => v.into_iter().map(|ids| (Prompt::Tokens(ids), None)).collect(),
    };
    let info = ensure_loaded(&state, &req.model, deadline, keep_alive).await?;
    let want_logprobs = req.logprobs.is_some();
    let sampling = Sampling {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        min_p: req.min_p,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        repetition_penalty: req.repetition_penalty,
        stop: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
    };
    let params = sampling.params(req.max_tokens.unwrap_or(16), "max_tokens", want_logprobs, info.context_length)?;
    let id = format!("cmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let created = chrono::Utc::now().timestamp();
    let model = req.model;
    let echo = req.echo == Some(true);
    let start = {
        let (state, model) = (state.clone(), model.clone());
        move |prompt: Prompt, params: GenerationParams| {
            let (state, model) = (state.clone(), model.clone());
            async move {
                let run = Run::start(&state, &model, prompt, params, deadline).await?;
                Ok::<_, ApiError>(events(run, None, CallIds::OpenAi, false))
            }
        }
    };

    if req.stream != Some(true) {
        let (mut choices, mut total) = (Vec::new(), Usage::default());
        let mut finish = None;
        for (index, (prompt, text)) in prompts.into_iter().enumerate() {
            let mut answer = Answer::default();
            let mut stream = start(prompt, params.clone()).await?;
            while let Some(event) = stream.next().await {
                answer.push(event?);
            }
            add(&mut total, answer.usage);
            let logprobs = answer.logprobs.filter(|_| want_logprobs).map(|lp| CompletionLogprobs {
                tokens: lp.iter().map(|t| t.token.clone()).collect(),
                token_logprobs: lp.iter().map(|t| t.logprob).collect(),
                top_logprobs: None,
                text_offset: None,
            });
            let prefix = if echo { text.unwrap_or_default() } else { String::new() };
            finish = answer.finish.clone();
            choices.push(CompletionChoice {
                text: prefix + &answer.text,
                index: index as u32,
                logprobs,
                finish_reason: answer.finish.map(|f| f.openai()),
            });
        }
        ctx.record.set_tokens(total.prompt_tokens as usize, total.completion_tokens as usize);
        ctx.record.set_finish(finish.unwrap_or(mlx_manager_api::Finish::Stop).openai().as_str(), 0);
        ctx.record.succeed();
        return Ok(Json(body(&id, created, &model, choices, Some(total))).into_response());
    }

    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let mut first = Some(start(prompts[0].0.clone(), params.clone()).await?);
    let record = ctx.record.clone();
    let request_id = ctx.request_id.clone();
    let chunk = move |index: usize, text: String, finish: Option<&mlx_manager_api::Finish>| {
        let choice =
            CompletionChoice { text, index: index as u32, logprobs: None, finish_reason: finish.map(|f| f.openai()) };
        Sse::default().data(serde_json::to_string(&body(&id, created, &model, vec![choice], None)).expect("serialises"))
    };
    let stream = async_stream::stream! {
        let mut total = Usage::default();
        let mut last = None;
        for (index, (prompt, text)) in prompts.into_iter().enumerate() {
            let run = match first.take() {
                Some(run) => Ok(run),
                None => start(prompt, params.clone()).await,
            };
            let mut run = match run {
                Ok(run) => run,
                Err(e) => {
                    record.fail(&e);
                    yield Ok::<_, Infallible>(Sse::default().data(e.body(Flavor::OpenAi, "/v1/completions", &request_id).to_string()));
                    return;
                }
            };
            if echo {
                yield Ok(chunk(index, text.unwrap_or_default(), None));
            }
            while let Some(event) = run.next().await {
                match event {
                    Ok(Event::Text(t)) => yield Ok(chunk(index, t, None)),
                    Ok(Event::Done { finish, usage }) => {
                        add(&mut total, usage);
                        yield Ok(chunk(index, String::new(), Some(&finish)));
                        last = Some(finish);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        record.set_tokens(total.prompt_tokens as usize, total.completion_tokens as usize);
                        record.fail(&e);
                        yield Ok(Sse::default().data(e.body(Flavor::OpenAi, "/v1/completions", &request_id).to_string()));
                        return;
                    }
                }
            }
        }
        record.set_tokens(total.prompt_tokens as usize, total.completion_tokens as usize);
        record.set_finish(last.unwrap_or(mlx_manager_api::Finish::Stop).openai().as_str(), 0);
        if include_usage {
            let usage = body("", 0, "", Vec::new(), Some(total));
            yield Ok(Sse::default().data(serde_json::to_string(&usage).expect("serialises")));
        }
        record.succeed();
        yield Ok(Sse::default().data("[DONE]"));
    };
    Ok(axum::response::sse::Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
