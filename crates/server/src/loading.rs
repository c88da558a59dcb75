//! `GET /admin/models/{id}/loading-progress`: Server-Sent Events with the model's loading state —
//! the current one first (so a late subscriber is told at once), then each change until the model
//! is ready or its load failed. A model not loaded yet reports `not_loaded` and the stream waits
//! for a load (a request or a preload) to start.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use mlx_manager_engine::{LoadEvent, LoadState};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::state::AppState;

fn event(model: &str, state: LoadState) -> Event {
    let data = serde_json::to_string(&LoadEvent { model: model.to_string(), state }).expect("serialisable");
    Event::default().event("progress").data(data)
}

/// The SSE response for `model` (registered).
pub fn progress(state: &Arc<AppState>, ctx: &RequestContext, model: &str) -> Result<Response, ApiError> {
    ctx.record.set_model(model);
    let entry = state.registry.get(model).ok_or_else(|| ApiError::ModelNotFound(model.to_string()))?;
    let mut rx = state.engine.load_state(&entry.id);
    ctx.record.succeed();
    let id = entry.id;
    let stream = async_stream::stream! {
        // The current state first (a late subscriber learns it at once); done if it is final.
        let current = rx.borrow_and_update().clone();
        let waiting = current == LoadState::NotLoaded;
        let settled = current.is_settled();
        yield Ok::<_, Infallible>(event(&id, current));
        if settled && !waiting {
            return;
        }
        // Then each change until the load ends (an unload meanwhile ends the stream too).
        while rx.changed().await.is_ok() {
            let state = rx.borrow_and_update().clone();
            if state == LoadState::NotLoaded {
                break;
            }
            let settled = state.is_settled();
            yield Ok(event(&id, state));
            if settled {
                break;
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
