//! `POST /v1/completions` (legacy text completions) on the local engine: one run per prompt,
//! one after another, each through the same event loop as chat; their events go to the
//! completions encoder through the same `respond` as every other answer.

use std::sync::Arc;

use axum::response::Response;
use futures_util::StreamExt;
use mlx_manager_api::encode::CompletionEncoder;
use mlx_manager_api::openai::{CompletionRequest, TextOrTokens};
use mlx_manager_api::Event;
use mlx_manager_engine::{GenerationParams, Prompt};

use crate::error::ApiError;
use crate::local::events::{events, CallIds, Events};
use crate::local::params::Sampling;
use crate::middleware::RequestContext;
use crate::respond::{respond, Reply};
use crate::run::{ensure_loaded, Deadline, Run};
use crate::state::AppState;

/// Starts one prompt's run: its events, with the prompt's text first when echoing.
async fn run(
    state: Arc<AppState>,
    model: String,
    prompt: Prompt,
    echo: Option<String>,
    params: GenerationParams,
    deadline: Deadline,
) -> Result<(u32, Events), ApiError> {
    let run = Run::start(&state, &model, prompt, params, deadline).await?;
    let prompt_tokens = run.prompt_tokens as u32;
    let echoed = futures_util::stream::iter(echo.map(|t| Ok(Event::Text(t))));
    Ok((prompt_tokens, echoed.chain(events(run, None, CallIds::OpenAi, false)).boxed()))
}

/// Serves `req` (checked by `check::completions`).
pub(crate) async fn serve(
    state: Arc<AppState>,
    ctx: RequestContext,
    req: CompletionRequest,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    let echo = req.echo == Some(true);
    // (prompt, text to echo)
    let prompts: Vec<(Prompt, Option<String>)> = match &req.prompt {
        TextOrTokens::Text(t) => vec![(Prompt::Text(t.clone()), Some(t.clone()))],
        TextOrTokens::Texts(v) => v.iter().map(|t| (Prompt::Text(t.clone()), Some(t.clone()))).collect(),
        TextOrTokens::Tokens(ids) => vec![(Prompt::Tokens(ids.clone()), None)],
        TextOrTokens::TokenLists(v) => v.iter().map(|ids| (Prompt::Tokens(ids.clone()), None)).collect(),
    };
    ensure_loaded(&state, &req.model, deadline, keep_alive).await?;
    let mut params = Sampling::from(&req).params(req.max_tokens.unwrap_or(16), req.logprobs.is_some());
    params.grammar = crate::local::grammar::requested(req.response_format.as_ref(), &req.guided).map(|(g, _)| g);
    params.draft =
        crate::local::draft::draft(&state, &req.model, &req.speculative, params.grammar.is_some(), deadline).await?;
    let id = format!("cmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let encoder = CompletionEncoder::new(id, chrono::Utc::now().timestamp(), &req.model, include_usage, prompts.len());
    let mut prompts = prompts.into_iter();
    // The first run starts before answering: errors about the request are plain HTTP errors.
    let (first, first_echo) = prompts.next().ok_or(ApiError::Internal)?;
    let first_echo = first_echo.filter(|_| echo);
    let (prompt_tokens, first) =
        run(state.clone(), req.model.clone(), first, first_echo, params.clone(), deadline).await?;
    let (model, rest) = (req.model.clone(), prompts);
    let later = futures_util::stream::iter(rest)
        .then(move |(prompt, text)| {
            let (state, model, params) = (state.clone(), model.clone(), params.clone());
            async move { run(state, model, prompt, text.filter(|_| echo), params, deadline).await }
        })
        .flat_map(|started| match started {
            Ok((_, events)) => events,
            Err(e) => futures_util::stream::iter([Err(e)]).boxed(),
        });
    let events = first.chain(later).boxed();
    respond(
        encoder,
        ctx.record.clone(),
        ctx.request_id.clone(),
        Reply::Events { prompt_tokens, events },
        req.stream == Some(true),
    )
    .await
}
