//! A provider's leg: the typed request goes to the catalog (which converts it when the provider
//! speaks the other API); chat and messages answers come back as API-neutral events and go
//! through the same encoders as the local engine's; completions and embeddings pass through.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use mlx_manager_providers::{ChatReply, Provider, Reply as Upstream, StreamItem};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::request::{Api, ModelRequest};
use crate::respond::{chat_encoder, error_event, messages_encoder, recorded, respond, Reply};
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
fn reply(upstream: ChatReply, deadline: Deadline) -> Reply {
    match upstream {
        ChatReply::Answer(answer) => Reply::Whole(answer),
        ChatReply::Events(mut events) => {
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
            Reply::Events { prompt_tokens: 0, events: events.boxed() }
        }
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
    let (record, request_id) = (ctx.record.clone(), ctx.request_id.clone());
    let upstream = match request {
        ModelRequest::Chat(req) => {
            let (stream, model) = (req.streams(), req.model.clone());
            let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
            let answer =
                deadline.run(catalog.openai_chat(provider, req, limit)).await?.map_err(ApiError::from_provider)?;
            let encoder = chat_encoder(&request_id, &model, include_usage);
            let reply = reply(answer, deadline);
            return respond(encoder, record, request_id, reply, stream).await;
        }
        ModelRequest::Messages(req) => {
            let (stream, model) = (req.streams(), req.model.clone());
            let answer = deadline
                .run(catalog.anthropic_messages(provider, req, limit))
                .await?
                .map_err(ApiError::from_provider)?;
            let encoder = messages_encoder(&request_id, &model);
            let reply = reply(answer, deadline);
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
        Upstream::Json { body, usage } => Ok(recorded(&record, body, usage.prompt_tokens, usage.completion_tokens)),
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
                    yield Ok(error_event(&error, api.flavor(), api.path(), &request_id));
                    break;
                }
            };
            Ok(axum::response::sse::Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
        }
    }
}
