//! A provider's leg: the typed request goes to the catalog (which converts it when the provider
//! speaks the other API); chat and messages answers come back as API-neutral events and go
//! through the same encoders as the local engine's; completions and embeddings pass through.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use mlx_manager_api::encode::{ChatEncoder, MessagesEncoder};
use mlx_manager_providers::{Provider, Reply as Upstream, StreamItem};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::request::{Api, ModelRequest};
use crate::respond::{respond, Reply};
use crate::run::Deadline;
use crate::state::AppState;

/// The provider's own timeout (after which the rule's fallback may serve) applies only when it
/// is shorter than what is left of the endpoint's; otherwise the endpoint's timeout answers 408.
fn timeout(provider: &Provider, deadline: &Deadline) -> Duration {
    let remaining = deadline.remaining();
    provider
        .config
        .timeout_seconds
        .map(|s| Duration::from_secs(u64::from(s)))
        .filter(|t| *t < remaining)
        .unwrap_or(remaining + Duration::from_secs(1))
}

/// A chat or messages answer as the encoders take it.
fn reply(upstream: Upstream, deadline: Deadline) -> Result<Reply, ApiError> {
    match upstream {
        Upstream::Answer(answer) => Ok(Reply::Whole(answer)),
        Upstream::Events(mut events) => {
            let events = async_stream::stream! {
                loop {
                    match deadline.run(events.next()).await {
                        Ok(Some(item)) => yield item.map_err(ApiError::from_provider),
                        Ok(None) => return,
                        Err(timeout) => {
                            yield Err(timeout);
                            return;
                        }
                    }
                }
            };
            Ok(Reply::Events { prompt_tokens: 0, events: events.boxed() })
        }
        Upstream::Json { .. } | Upstream::Stream(_) => Err(ApiError::Internal),
    }
}

/// Serves `request` on `provider`.
pub(crate) async fn serve(
    api: Api,
    state: &Arc<AppState>,
    ctx: &RequestContext,
    provider: &Provider,
    request: ModelRequest,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let catalog = state.catalog.get().ok_or(ApiError::Internal)?;
    let limit = timeout(provider, &deadline);
    let suffix = ctx.request_id.trim_start_matches("req_");
    let (record, request_id) = (ctx.record.clone(), ctx.request_id.clone());
    let upstream = match request {
        ModelRequest::Chat(req) => {
            let (stream, model) = (req.streams(), req.model.clone());
            let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
            let answer =
                deadline.run(catalog.openai_chat(provider, req, limit)).await?.map_err(ApiError::from_provider)?;
            let encoder =
                ChatEncoder::new(format!("chatcmpl-{suffix}"), chrono::Utc::now().timestamp(), model, include_usage);
            let reply = reply(answer, deadline)?;
            return respond(encoder, record, request_id, reply, stream).await;
        }
        ModelRequest::Messages(req) => {
            let (stream, model) = (req.streams(), req.model.clone());
            let answer = deadline
                .run(catalog.anthropic_messages(provider, req, limit))
                .await?
                .map_err(ApiError::from_provider)?;
            let encoder = MessagesEncoder::new(format!("msg_{suffix}"), model);
            let reply = reply(answer, deadline)?;
            return respond(encoder, record, request_id, reply, stream).await;
        }
        ModelRequest::Completions(_) | ModelRequest::Embeddings(_) => {
            let path = if api == Api::Completions { "completions" } else { "embeddings" };
            deadline
                .run(catalog.openai_other(provider, path, request.body(), limit))
                .await?
                .map_err(ApiError::from_provider)?
        }
    };
    match upstream {
        Upstream::Json { body, usage } => {
            record.set_tokens(usage.prompt_tokens as usize, usage.completion_tokens as usize);
            record.succeed();
            Ok(Json(body).into_response())
        }
        Upstream::Stream(mut items) => {
            let stream = async_stream::stream! {
                loop {
                    let error = match deadline.run(items.next()).await {
                        Ok(Some(Ok(StreamItem::Event(e)))) => {
                            yield Ok::<_, Infallible>(Sse::default().data(e.data));
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
                    yield Ok(Sse::default().data(error.body(api.flavor(), api.path(), &request_id).to_string()));
                    break;
                }
            };
            Ok(axum::response::sse::Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
        }
        Upstream::Answer(_) | Upstream::Events(_) => Err(ApiError::Internal),
    }
}
