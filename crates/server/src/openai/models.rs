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
    let local = state.registry.list();
    let mut data: Vec<_> = local.iter().map(model_json).collect();
    // Names routed by an exact rule are models too, owned by the backend that serves them.
    if let Some(catalog) = state.catalog.get() {
        for rule in catalog.rules() {
            let r = &rule.rule;
            let listed = local.iter().any(|m| m.id == r.pattern);
            if r.enabled && r.match_type == mlx_manager_core::MatchType::Exact && !listed {
                if let Some(route) = catalog.resolve(&r.pattern) {
                    data.push(
                        json!({"id": r.pattern, "object": "model", "created": 0, "owned_by": route.primary.name()}),
                    );
                }
            }
        }
    }
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}` (ids may contain `/`).
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    ctx.record.set_model(&id);
    if let Some(route) = state.catalog.get().and_then(|c| c.resolve(&id)) {
        ctx.record.succeed();
        return Ok(Json(json!({"id": id, "object": "model", "created": 0, "owned_by": route.primary.name()})));
    }
    let entry = state.registry.get(&id).ok_or(ApiError::ModelNotFound(id))?;
    ctx.record.succeed();
    Ok(Json(model_json(&entry)))
}
