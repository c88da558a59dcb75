//! Headless equivalents of the desktop UI: model pool, timeouts, health.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mlx_manager_core::{EndpointKind, Timeouts};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{invalid, parse, JsonBody};
use crate::middleware::RequestContext;
use crate::run::Deadline;
use crate::state::AppState;

/// `GET /health`.
pub async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let status = state.engine.status().await;
    let (ok, loaded) = match &status {
        Ok(s) => (true, s.loaded.len()),
        Err(_) => (false, 0),
    };
    Json(json!({
        "status": if ok { "ok" } else { "engine_stopped" },
        "models_loaded": loaded,
        "uptime_seconds": state.started.elapsed().as_secs(),
    }))
}

/// `GET /admin/models`: every known model, and what is loaded.
pub async fn models(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = state.engine.status().await.map_err(|e| ApiError::from_engine(e, ""))?;
    let available: Vec<_> = state
        .registry
        .list()
        .into_iter()
        .map(|m| {
            let loaded = status.loaded.iter().any(|l| l.id == m.id);
            json!({
                "id": m.id, "path": m.path, "size_bytes": m.size_bytes, "loaded": loaded,
                "model_type": m.model_type, "family": m.family, "supported": m.family.is_some(),
            })
        })
        .collect();
    ctx.record.succeed();
    Ok(Json(json!({
        "available": available,
        "loaded": status.loaded,
        "running_generations": status.running,
        "supported_model_types": mlx_manager_engine::supported_model_types(),
    })))
}

/// `POST /admin/models/{id}/preload`, `DELETE /admin/models/{id}[?force=true]` and
/// `GET /admin/models/{id}/loading-progress` (SSE) — ids may contain `/`.
pub async fn model_action(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    method: Method,
    Path(rest): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if method == Method::GET {
        let id = rest.strip_suffix("/loading-progress").ok_or(ApiError::NotFound)?;
        return crate::loading::progress(&state, &ctx, id);
    }
    if method == Method::POST {
        let id = rest.strip_suffix("/preload").ok_or(ApiError::NotFound)?;
        ctx.record.set_model(id);
        let entry = state.registry.servable(id)?;
        let deadline = Deadline::new(&state, EndpointKind::Chat);
        let info = deadline
            .run(state.engine.preload(&entry.id, &entry.path))
            .await?
            .map_err(|e| ApiError::from_engine(e, id))?;
        ctx.record.succeed();
        return Ok(Json(json!({"loaded": info})).into_response());
    }
    if method == Method::DELETE {
        ctx.record.set_model(&rest);
        if state.registry.get(&rest).is_none() {
            return Err(ApiError::ModelNotFound(rest));
        }
        // `?force=true` ends the model's running requests now; otherwise they finish first.
        let force = match query.get("force").map(String::as_str) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => return Err(invalid("force", "must be true or false")),
        };
        let unloaded = if force { state.engine.unload_forced(&rest).await } else { state.engine.unload(&rest).await };
        let was_loaded = unloaded.map_err(|e| ApiError::from_engine(e, &rest))?;
        ctx.record.succeed();
        return Ok(Json(json!({"id": rest, "unloaded": was_loaded, "forced": force})).into_response());
    }
    Err(ApiError::MethodNotAllowed)
}

/// `GET /admin/settings/timeouts`.
pub async fn get_timeouts(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
) -> Json<Timeouts> {
    ctx.record.succeed();
    Json(state.settings().timeouts)
}

/// `PUT /admin/settings/timeouts`: applies to requests from now on, no restart.
pub async fn put_timeouts(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Json<Timeouts>, ApiError> {
    let t: Timeouts = parse(body, &["chat_seconds", "completions_seconds", "embeddings_seconds"], &[])?;
    if let Some(field) = t.out_of_range() {
        return Err(invalid(field, "must be between 1 and 86400 seconds"));
    }
    state.set_timeouts(t);
    ctx.record.succeed();
    Ok(Json(t))
}
