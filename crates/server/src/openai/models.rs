//! `GET /v1/models` and `GET /v1/models/{id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use mlx_manager_api::openai::{Model, ModelList};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::registry::ModelEntry;
use crate::state::AppState;

fn model_of(entry: &ModelEntry) -> Model {
    let created = std::fs::metadata(&entry.path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Model::new(&entry.id, created, "mlx-manager")
}

/// `GET /v1/models`.
pub async fn list(State(state): State<Arc<AppState>>, Extension(ctx): Extension<RequestContext>) -> Json<ModelList> {
    ctx.record.succeed();
    let local = state.registry.list();
    let mut data: Vec<_> = local.iter().map(model_of).collect();
    // Names routed by an exact rule are models too, owned by the backend that serves them.
    if let Some(catalog) = state.catalog.get() {
        for rule in catalog.rules() {
            let r = &rule.rule;
            let listed = local.iter().any(|m| m.id == r.pattern);
            if r.enabled && r.match_type == mlx_manager_core::MatchType::Exact && !listed {
                if let Some(route) = catalog.resolve(&r.pattern) {
                    data.push(Model::new(&r.pattern, 0, route.primary.name()));
                }
            }
        }
    }
    Json(ModelList { object: "list".into(), data })
}

/// `GET /v1/models/{id}` (ids may contain `/`).
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    ctx.record.set_model(&id);
    if let Some(route) = state.catalog.get().and_then(|c| c.resolve(&id)) {
        ctx.record.succeed();
        return Ok(Json(Model::new(id, 0, route.primary.name())));
    }
    let entry = state.registry.get(&id).ok_or(ApiError::ModelNotFound(id))?;
    ctx.record.succeed();
    Ok(Json(model_of(&entry)))
}
