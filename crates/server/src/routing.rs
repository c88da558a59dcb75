//! Routing a model request: the catalog's rules pick the backend (local engine or a provider),
//! the request is served there — translated when the provider speaks the other API — and, when
//! the first backend fails in a way that allows it (down, timeout, 429, 5xx), by the rule's
//! fallback. The response names the backend that served it (`x-mlx-backend`, `x-mlx-fallback`);
//! the audit entry records the same.

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use mlx_manager_core::EndpointKind;
use mlx_manager_providers::{Backend, Provider, Reply, StreamItem};
use serde_json::{Map, Value};

use crate::error::{ApiError, Flavor};
use crate::middleware::RequestContext;
use crate::run::Deadline;
use crate::state::AppState;

/// Response header naming the backend that served the request.
pub const BACKEND_HEADER: &str = "x-mlx-backend";
/// Response header present (`true`) when the rule's fallback served the request.
pub const FALLBACK_HEADER: &str = "x-mlx-fallback";

/// The routed model APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Chat,
    Completions,
    Embeddings,
    Messages,
}

impl Api {
    fn kind(self) -> EndpointKind {
        match self {
            Api::Chat | Api::Messages => EndpointKind::Chat,
            Api::Completions => EndpointKind::Completions,
            Api::Embeddings => EndpointKind::Embeddings,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Completions => "/v1/completions",
            Api::Embeddings => "/v1/embeddings",
            Api::Messages => "/v1/messages",
        }
    }

    fn flavor(self) -> Flavor {
        if self == Api::Messages {
            Flavor::Anthropic
        } else {
            Flavor::OpenAi
        }
    }
}

async fn serve_local(
    api: Api,
    state: Arc<AppState>,
    ctx: RequestContext,
    body: Map<String, Value>,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    match api {
        Api::Chat => crate::openai::chat::local(state, ctx, body, deadline).await,
        Api::Completions => crate::openai::completions::local(state, ctx, body, deadline).await,
        Api::Embeddings => {
            crate::openai::embeddings::local(state, ctx, body, deadline).await.map(IntoResponse::into_response)
        }
        Api::Messages => crate::anthropic::local(state, ctx, body, deadline).await,
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
pub(crate) async fn dispatch(
    api: Api,
    state: Arc<AppState>,
    ctx: RequestContext,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
    // One deadline for the whole request: a fallback gets what the first backend left of it.
    let deadline = Deadline::new(&state, api.kind());
    let model = body.get("model").and_then(Value::as_str).map(str::to_string);
    let route = match (state.catalog.get(), &model) {
        (Some(catalog), Some(model)) => catalog.resolve(model),
        _ => None,
    };
    let Some(route) = route else {
        return serve_local(api, state, ctx, body, deadline).await;
    };
    ctx.record.set_model(model.as_deref().unwrap_or_default());
    let legs: Vec<_> = std::iter::once(route.primary).chain(route.fallback).collect();
    let mut last = ApiError::Internal;
    for (i, target) in legs.iter().enumerate() {
        let fallback = i > 0;
        let mut body = body.clone();
        body.insert("model".into(), Value::String(target.model.clone()));
        let result = match &target.backend {
            Backend::Local => {
                ctx.record.set_backend(target.backend_type(), None, fallback);
                serve_local(api, state.clone(), ctx.clone(), body, deadline).await
            }
            Backend::Provider(p) => {
                ctx.record.set_backend(target.backend_type(), Some(p.name()), fallback);
                serve_provider(api, &state, &ctx, p, body, deadline).await
            }
        };
        match result {
            Ok(mut response) => {
                mark(&mut response, target.name(), fallback);
                return Ok(response);
            }
            Err(e) if i + 1 < legs.len() && e.allows_fallback() => {
                tracing::warn!(
                    request_id = %ctx.request_id, rule = route.rule_id, from = target.name(),
                    to = legs[i + 1].name(), error = %e, "backend failed; using the rule's fallback"
                );
                last = e;
            }
            Err(e) => {
                let mut response = e.into_response();
                mark(&mut response, target.name(), fallback);
                return Ok(response);
            }
        }
    }
    Err(last)
}

fn sse(event: mlx_manager_providers::SseEvent) -> Event {
    let e = Event::default().data(event.data);
    match event.event {
        Some(name) => e.event(name),
        None => e,
    }
}

async fn serve_provider(
    api: Api,
    state: &Arc<AppState>,
    ctx: &RequestContext,
    provider: &Provider,
    body: Map<String, Value>,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let catalog = state.catalog.get().ok_or(ApiError::Internal)?;
    // The provider's own timeout (after which the rule's fallback may serve) applies only when it
    // is shorter than what is left of the endpoint's; otherwise the endpoint's timeout answers 408.
    let remaining = deadline.remaining();
    let after_deadline = remaining + std::time::Duration::from_secs(1);
    let timeout = provider
        .config
        .timeout_seconds
        .map(|s| std::time::Duration::from_secs(u64::from(s)))
        .filter(|t| *t < remaining)
        .unwrap_or(after_deadline);
    let suffix = ctx.request_id.trim_start_matches("req_");
    let reply = match api {
        Api::Chat => deadline.run(catalog.openai_chat(provider, body, &format!("chatcmpl-{suffix}"), timeout)).await,
        Api::Messages => {
            deadline.run(catalog.anthropic_messages(provider, body, &format!("msg_{suffix}"), timeout)).await
        }
        Api::Completions => deadline.run(catalog.openai_other(provider, "completions", body, timeout)).await,
        Api::Embeddings => deadline.run(catalog.openai_other(provider, "embeddings", body, timeout)).await,
    }?
    .map_err(ApiError::from_provider)?;
    match reply {
        Reply::Json { body, usage } => {
            ctx.record.set_tokens(usage.prompt_tokens as usize, usage.completion_tokens as usize);
            ctx.record.succeed();
            Ok(Json(body).into_response())
        }
        Reply::Stream(mut upstream) => {
            let record = ctx.record.clone();
            let request_id = ctx.request_id.clone();
            let stream = async_stream::stream! {
                loop {
                    let error = match deadline.run(upstream.next()).await {
                        Ok(Some(Ok(StreamItem::Event(e)))) => {
                            yield Ok::<_, Infallible>(sse(e));
                            continue;
                        }
                        Ok(Some(Ok(StreamItem::Usage(u)))) => {
                            record.set_tokens(u.prompt_tokens as usize, u.completion_tokens as usize);
                            continue;
                        }
                        Ok(None) => {
                            record.succeed();
                            break;
                        }
                        Ok(Some(Err(e))) => ApiError::from_provider(e),
                        Err(timeout) => timeout,
                    };
                    record.fail(&error);
                    let body = error.body(api.flavor(), api.path(), &request_id);
                    yield Ok(match api.flavor() {
                        Flavor::Anthropic => Event::default().event("error").data(body.to_string()),
                        Flavor::OpenAi => Event::default().data(body.to_string()),
                    });
                    break;
                }
            };
            Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
        }
    }
}
