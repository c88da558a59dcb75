//! The backend seam. A model request is parsed and validated once (`request`), then the catalog's
//! rules turn it into ordered legs — the local engine, a provider, the rule's fallback — tried in
//! order while a leg fails in a way that allows it (down, timeout, 429, 5xx). Chat and Messages
//! answers from every leg are API-neutral events, encoded once per API (`respond`), which also
//! sets the audit outcome. The response names the backend that served it (`x-mlx-backend`,
//! `x-mlx-fallback`); the audit entry records the same.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use mlx_manager_api::ChatDialect;
use mlx_manager_providers::{Backend, Target};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::local::events::CallIds;
use crate::middleware::RequestContext;
use crate::request::{Api, ModelRequest};
use crate::respond::{chat_encoder, messages_encoder, respond, Reply};
use crate::run::Deadline;
use crate::state::AppState;

/// Response header naming the backend that served the request.
pub const BACKEND_HEADER: &str = "x-mlx-backend";
/// Response header present (`true`) when the rule's fallback served the request.
pub const FALLBACK_HEADER: &str = "x-mlx-fallback";

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    dispatch(Api::Chat, state, ctx, body).await
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    dispatch(Api::Completions, state, ctx, body).await
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    dispatch(Api::Embeddings, state, ctx, body).await
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    dispatch(Api::Messages, state, ctx, body).await
}

/// The backends to try, in order, and the rule that chose them (None: no rule matched, the local
/// engine serves the model under its own name).
fn legs(state: &AppState, model: &str) -> (Vec<Target>, Option<u32>) {
    match state.catalog.get().and_then(|c| c.resolve(model)) {
        Some(route) => (std::iter::once(route.primary).chain(route.fallback).collect(), Some(route.rule_id)),
        None => (vec![Target { backend: Backend::Local, model: model.to_string() }], None),
    }
}

fn mark(response: &mut Response, backend: &str, fallback: bool) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(backend) {
        headers.insert(BACKEND_HEADER, v);
    }
    if fallback {
        headers.insert(FALLBACK_HEADER, HeaderValue::from_static("true"));
    }
}

/// Serves a model request where the routing rules send it.
async fn dispatch(
    api: Api,
    state: Arc<AppState>,
    ctx: RequestContext,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<Response, ApiError> {
    if let Some(model) = body.get("model").and_then(|m| m.as_str()) {
        ctx.record.set_model(model);
    }
    let request = ModelRequest::parse(api, body)?;
    // One deadline for the whole request: a fallback gets what the first backend left of it.
    let deadline = Deadline::new(&state, api.kind());
    let (legs, rule) = legs(&state, request.model());
    let routed = rule.is_some();
    let mut last = ApiError::Internal;
    for (i, leg) in legs.iter().enumerate() {
        let fallback = i > 0;
        let request = request.for_model(&leg.model);
        if routed {
            let provider = match &leg.backend {
                Backend::Provider(p) => Some(p.name()),
                Backend::Local => None,
            };
            ctx.record.set_backend(leg.backend_type(), provider, fallback);
        }
        let result = match &leg.backend {
            Backend::Local => serve_local(&state, &ctx, request, deadline).await,
            Backend::Provider(p) => crate::provider_leg::serve(api, &state, &ctx, p, request, deadline).await,
        };
        match result {
            Ok(mut response) => {
                if routed {
                    mark(&mut response, leg.name(), fallback);
                }
                return Ok(response);
            }
            Err(e) if i + 1 < legs.len() && e.allows_fallback() => {
                tracing::warn!(
                    request_id = %ctx.request_id, rule = rule.unwrap_or_default(), from = leg.name(),
                    to = legs[i + 1].name(), error = %e, "backend failed; using the rule's fallback"
                );
                last = e;
            }
            Err(e) if routed => {
                let mut response = e.into_response();
                mark(&mut response, leg.name(), fallback);
                return Ok(response);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The local engine's leg: what it cannot do is refused before anything is loaded.
async fn serve_local(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: ModelRequest,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let (record, request_id) = (ctx.record.clone(), ctx.request_id.clone());
    match request {
        ModelRequest::Chat(req) => {
            crate::local::check::chat(&req)?;
            let field = if req.max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
            crate::local::check::fits(state, &req.model, req.max_output(), field)?;
            let stream = req.streams();
            let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
            let model = req.model.clone();
            let started = crate::local::chat::serve(state, req, CallIds::OpenAi, deadline).await?;
            let encoder = chat_encoder(&request_id, &model, include_usage);
            let reply = Reply::Events { prompt_tokens: started.prompt_tokens, events: started.events };
            respond(encoder, record, request_id, reply, stream).await
        }
        ModelRequest::Messages(req) => {
            crate::local::check::messages(&req)?;
            crate::local::check::fits(state, &req.model, Some(req.max_tokens), "max_tokens")?;
            let chat =
                mlx_manager_api::messages_to_chat(&req, ChatDialect::Local).map_err(ApiError::from_conversion)?;
            crate::local::check::chat(&chat)?;
            let started = crate::local::chat::serve(state, chat, CallIds::Anthropic, deadline).await?;
            let encoder = messages_encoder(&request_id, &req.model);
            let reply = Reply::Events { prompt_tokens: started.prompt_tokens, events: started.events };
            respond(encoder, record, request_id, reply, req.streams()).await
        }
        ModelRequest::Completions(req) => {
            crate::local::check::completions(&req)?;
            crate::local::check::fits(state, &req.model, req.max_tokens, "max_tokens")?;
            crate::openai::completions::serve(state.clone(), ctx.clone(), req, deadline).await
        }
        ModelRequest::Embeddings(req) => {
            crate::local::check::embeddings(&req)?;
            crate::openai::embeddings::serve(state.clone(), ctx.clone(), req, deadline).await
        }
    }
}
