//! The typed commands the settings window calls; each is a thin wrapper over the [`Controller`].

use mlx_manager_core::{
    AuditFilter, AuditPage, AuditStats, ProviderInput, ProviderTestResult, ProviderView, RouteTest, RoutingRule,
    RuleInput, Timeouts,
};
use rand::Rng;
use tauri::State;

use crate::controller::{Controller, ServerStatus};
use crate::error::CommandError;
use crate::export::{ExportFormat, ExportResult};
use crate::models::ModelPool;
use crate::settings::{AppSettings, PoolSettings, ServerConfig};

type Ctl<'a> = State<'a, Controller>;

/// Whether the HTTP endpoint is up, and where.
#[tauri::command]
#[specta::specta]
pub async fn server_status(ctl: Ctl<'_>) -> Result<ServerStatus, CommandError> {
    Ok(ctl.server_status())
}

/// Starts the HTTP endpoint on the saved address.
#[tauri::command]
#[specta::specta]
pub async fn start_server(ctl: Ctl<'_>) -> Result<ServerStatus, CommandError> {
    ctl.start_server().await
}

/// Stops the HTTP endpoint (in-flight requests finish first).
#[tauri::command]
#[specta::specta]
pub async fn stop_server(ctl: Ctl<'_>) -> Result<ServerStatus, CommandError> {
    Ok(ctl.stop_server().await)
}

/// All settings.
#[tauri::command]
#[specta::specta]
pub async fn get_settings(ctl: Ctl<'_>) -> Result<AppSettings, CommandError> {
    Ok(ctl.settings())
}

/// Saves listener settings and restarts the listener on them.
#[tauri::command]
#[specta::specta]
pub async fn apply_server_config(ctl: Ctl<'_>, config: ServerConfig) -> Result<ServerStatus, CommandError> {
    ctl.apply_server_config(config).await
}

/// A new random API key (not saved until applied).
#[tauri::command]
#[specta::specta]
pub async fn generate_api_key() -> Result<String, CommandError> {
    let key: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(40).map(char::from).collect();
    Ok(format!("mlxm-{key}"))
}

/// Saves timeouts and applies them to the running server at once.
#[tauri::command]
#[specta::specta]
pub async fn set_timeouts(ctl: Ctl<'_>, timeouts: Timeouts) -> Result<Timeouts, CommandError> {
    ctl.set_timeouts(timeouts).await
}

/// Restores the default timeouts (15 min, 10 min, 2 min).
#[tauri::command]
#[specta::specta]
pub async fn reset_timeouts(ctl: Ctl<'_>) -> Result<Timeouts, CommandError> {
    ctl.set_timeouts(Timeouts::default()).await
}

/// Saves and applies pool limits, start-up models and per-model drafts (a model cannot be its own
/// draft; both must be registered). A change of drafts restarts a running listener.
#[tauri::command]
#[specta::specta]
pub async fn set_pool_settings(ctl: Ctl<'_>, pool: PoolSettings) -> Result<PoolSettings, CommandError> {
    ctl.set_pool_settings(pool).await
}

/// Available and loaded models.
#[tauri::command]
#[specta::specta]
pub async fn model_pool(ctl: Ctl<'_>) -> Result<ModelPool, CommandError> {
    ctl.model_pool().await
}

/// Loads and pins a model.
#[tauri::command]
#[specta::specta]
pub async fn preload_model(ctl: Ctl<'_>, id: String) -> Result<ModelPool, CommandError> {
    ctl.preload_model(&id).await
}

/// Unloads a model and frees its memory.
#[tauri::command]
#[specta::specta]
pub async fn unload_model(ctl: Ctl<'_>, id: String) -> Result<ModelPool, CommandError> {
    ctl.unload_model(&id).await
}

/// Pins or unpins a loaded model.
#[tauri::command]
#[specta::specta]
pub async fn set_pinned(ctl: Ctl<'_>, id: String, pinned: bool) -> Result<ModelPool, CommandError> {
    ctl.set_pinned(&id, pinned).await
}

/// One page of the audit log, newest first (`cursor` from the previous page).
#[tauri::command]
#[specta::specta]
pub async fn audit_page(
    ctl: Ctl<'_>,
    filter: AuditFilter,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<AuditPage, CommandError> {
    ctl.audit_page(filter, cursor, limit).await
}

/// Stats for the same filters as the list.
#[tauri::command]
#[specta::specta]
pub async fn audit_stats(ctl: Ctl<'_>, filter: AuditFilter) -> Result<AuditStats, CommandError> {
    ctl.audit_stats(filter).await
}

/// Writes the filtered audit log to `path` (chosen in the save dialog).
#[tauri::command]
#[specta::specta]
pub async fn export_audit(
    ctl: Ctl<'_>,
    filter: AuditFilter,
    format: ExportFormat,
    path: String,
) -> Result<ExportResult, CommandError> {
    ctl.export_audit(filter, format, path).await
}

/// Every provider (keys only as a hint) and where keys are kept.
#[tauri::command]
#[specta::specta]
pub async fn list_providers(ctl: Ctl<'_>) -> Result<Vec<ProviderView>, CommandError> {
    Ok(ctl.catalog().providers())
}

/// Adds a provider (`original_name` None) or changes one (a new name renames it; rules follow).
/// Returns every provider.
#[tauri::command]
#[specta::specta]
pub async fn save_provider(
    ctl: Ctl<'_>,
    original_name: Option<String>,
    input: ProviderInput,
) -> Result<Vec<ProviderView>, CommandError> {
    match original_name {
        None => ctl.catalog().create_provider(input).await?,
        Some(name) => ctl.catalog().update_provider(&name, input).await?,
    };
    Ok(ctl.catalog().providers())
}

/// Deletes a provider no rule uses, and its key. Returns every provider.
#[tauri::command]
#[specta::specta]
pub async fn delete_provider(ctl: Ctl<'_>, name: String) -> Result<Vec<ProviderView>, CommandError> {
    ctl.catalog().delete_provider(&name).await?;
    Ok(ctl.catalog().providers())
}

/// Makes a minimal real call to the provider: latency, or the upstream's error.
#[tauri::command]
#[specta::specta]
pub async fn test_provider(ctl: Ctl<'_>, name: String) -> Result<ProviderTestResult, CommandError> {
    Ok(ctl.catalog().test_provider(&name).await?)
}

/// Every routing rule, in matching order.
#[tauri::command]
#[specta::specta]
pub async fn list_rules(ctl: Ctl<'_>) -> Result<Vec<RoutingRule>, CommandError> {
    Ok(ctl.catalog().rules())
}

/// Adds a rule (`id` None) or replaces one; it applies to the next request. Returns every rule.
#[tauri::command]
#[specta::specta]
pub async fn save_rule(ctl: Ctl<'_>, id: Option<u32>, input: RuleInput) -> Result<Vec<RoutingRule>, CommandError> {
    match id {
        None => ctl.catalog().create_rule(input).await?,
        Some(id) => ctl.catalog().update_rule(id, input).await?,
    };
    Ok(ctl.catalog().rules())
}

/// Deletes a rule. Returns every rule.
#[tauri::command]
#[specta::specta]
pub async fn delete_rule(ctl: Ctl<'_>, id: u32) -> Result<Vec<RoutingRule>, CommandError> {
    ctl.catalog().delete_rule(id).await?;
    Ok(ctl.catalog().rules())
}

/// Puts the rules in this order (first = matched first). Returns every rule.
#[tauri::command]
#[specta::specta]
pub async fn reorder_rules(ctl: Ctl<'_>, ids: Vec<u32>) -> Result<Vec<RoutingRule>, CommandError> {
    Ok(ctl.catalog().reorder_rules(ids).await?)
}

/// Which backend a model name would go to.
#[tauri::command]
#[specta::specta]
pub async fn test_route(ctl: Ctl<'_>, model: String) -> Result<RouteTest, CommandError> {
    if model.trim().is_empty() {
        return Err(CommandError::invalid("model", "enter a model name"));
    }
    Ok(ctl.catalog().test_route(&model))
}
