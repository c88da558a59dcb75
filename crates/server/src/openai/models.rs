//! `GET /v1/models` and `GET /v1/models/{id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::json;

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::registry::ModelEntry;
use crate::state::AppState;

fn model_json(entry: &ModelEntry) -> serde_json::Value {
    let created = std::fs::metadata(&entry.path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    json!({"id": entry.id, "object": "model", "created": created, "owned_by": "mlx-manager"})
}

/// `GET /v1/models`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
) -> Json<serde_json::Value> {
    ctx.record.succeed();
    let data: Vec<_> = state.registry.list().iter().map(model_json).collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}` (ids may contain `/`).
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    ctx.record.set_model(&id);
    let entry = state.registry.get(&id).ok_or(ApiError::ModelNotFound(id))?;
    ctx.record.succeed();
    Ok(Json(model_json(&entry)))
}
