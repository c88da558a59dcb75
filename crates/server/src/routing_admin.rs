//! Headless equivalents of the Providers and Routing rules sections: `/admin/providers` and
//! `/admin/routing-rules`. Keys are accepted here but only ever shown as a hint.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mlx_manager_core::{ProviderInput, RuleInput};
use mlx_manager_providers::Catalog;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{invalid, parse, JsonBody};
use crate::middleware::RequestContext;
use crate::state::AppState;

const PROVIDER_FIELDS: &[&str] =
    &["name", "kind", "base_url", "extra_headers", "enabled", "timeout_seconds", "api_key"];
const RULE_FIELDS: &[&str] =
    &["pattern", "match_type", "priority", "backend", "backend_model", "fallback", "fallback_model", "enabled"];

fn catalog(state: &AppState) -> Result<&Arc<Catalog>, ApiError> {
    state.catalog.get().ok_or(ApiError::NotFound)
}

fn done(ctx: &RequestContext, status: StatusCode, body: serde_json::Value) -> Response {
    ctx.record.succeed();
    (status, Json(body)).into_response()
}

fn rule_id(raw: &str) -> Result<u32, ApiError> {
    raw.parse().map_err(|_| ApiError::NoSuchItem(format!("no routing rule with id {raw}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// `GET /admin/providers`.
pub async fn list_providers(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    Ok(done(&ctx, StatusCode::OK, json!({"providers": c.providers(), "key_storage": c.key_storage()})))
}

/// `POST /admin/providers`.
pub async fn create_provider(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    let input: ProviderInput = parse(body, PROVIDER_FIELDS, &[])?;
    let view = c.create_provider(input).await.map_err(ApiError::from_provider)?;
    Ok(done(&ctx, StatusCode::CREATED, to_json(&view)))
}

/// `GET /admin/providers/{name}`.
pub async fn get_provider(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    let view = c
        .providers()
        .into_iter()
        .find(|p| p.config.name == name)
        .ok_or_else(|| ApiError::NoSuchItem(format!("no provider named `{name}`")))?;
    Ok(done(&ctx, StatusCode::OK, to_json(&view)))
}

/// `PUT /admin/providers/{name}` (a different `name` in the body renames it; rules follow).
pub async fn update_provider(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    let input: ProviderInput = parse(body, PROVIDER_FIELDS, &[])?;
    let view = c.update_provider(&name, input).await.map_err(ApiError::from_provider)?;
    Ok(done(&ctx, StatusCode::OK, to_json(&view)))
}

/// `DELETE /admin/providers/{name}`.
pub async fn delete_provider(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    catalog(&state)?.delete_provider(&name).await.map_err(ApiError::from_provider)?;
    ctx.record.succeed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/providers/{name}/test`: a minimal real call.
pub async fn test_provider(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let result = catalog(&state)?.test_provider(&name).await.map_err(ApiError::from_provider)?;
    Ok(done(&ctx, StatusCode::OK, to_json(&result)))
}

/// `GET /admin/routing-rules` (in matching order).
pub async fn list_rules(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<Response, ApiError> {
    Ok(done(&ctx, StatusCode::OK, json!({"rules": catalog(&state)?.rules()})))
}

/// `POST /admin/routing-rules`.
pub async fn create_rule(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    let input: RuleInput = parse(body, RULE_FIELDS, &[])?;
    let rule = c.create_rule(input).await.map_err(ApiError::from_provider)?;
    Ok(done(&ctx, StatusCode::CREATED, to_json(&rule)))
}

/// `PUT /admin/routing-rules/{id}`.
pub async fn update_rule(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    let id = rule_id(&id)?;
    let input: RuleInput = parse(body, RULE_FIELDS, &[])?;
    let rule = c.update_rule(id, input).await.map_err(ApiError::from_provider)?;
    Ok(done(&ctx, StatusCode::OK, to_json(&rule)))
}

/// `DELETE /admin/routing-rules/{id}`.
pub async fn delete_rule(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    c.delete_rule(rule_id(&id)?).await.map_err(ApiError::from_provider)?;
    ctx.record.succeed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct Order {
    ids: Vec<u32>,
}

/// `PUT /admin/routing-rules/order` with `{"ids": [...]}`, highest priority first.
pub async fn reorder_rules(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    let order: Order = parse(body, &["ids"], &[])?;
    let rules = c.reorder_rules(order.ids).await.map_err(ApiError::from_provider)?;
    Ok(done(&ctx, StatusCode::OK, json!({"rules": rules})))
}

#[derive(Deserialize)]
struct TestRoute {
    model: String,
}

/// `POST /admin/routing-rules/test` with `{"model": "..."}`: where that name would go.
pub async fn test_rule(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let c = catalog(&state)?;
    let t: TestRoute = parse(body, &["model"], &[])?;
    if t.model.is_empty() {
        return Err(invalid("model", "must not be empty"));
    }
    Ok(done(&ctx, StatusCode::OK, to_json(&c.test_route(&t.model))))
}
