//! MLX Manager's local HTTP endpoint: OpenAI- and Anthropic-compatible routes over the engine,
//! admin routes (the model pool, settings, audit log, providers and rules, and the model library:
//! Hub search, downloads, the Hugging Face cache), one error envelope, request ids, timeouts,
//! Host/Origin checks and an API key.
//!
//! Why a crate of its own: the same server runs headless (`mlx-manager serve`) and inside the
//! desktop shell; both wire it with the one start-up builder ([`Startup`]: store, model scan,
//! catalog, engine, state) and call [`serve`]. A model request is typed and validated once
//! (the `mlx-manager-api` types), routed to ordered backends, and answered by one encoder per API. Routing rules (from the
//! providers crate's catalog) may send a model request to a cloud provider instead of the engine. Nothing here touches MLX
//! (the engine thread does) or storage (audit entries leave through an
//! [`mlx_manager_core::AuditSink`] without waiting).
#![deny(missing_docs)]

mod admin;
mod audit_routes;
mod error;
mod extract;
mod keep_alive;
mod library_admin;
mod loading;
mod local;
mod metrics;
mod middleware;
mod openai;
pub mod paths;
mod provider_leg;
mod record;
mod registry;
mod request;
mod respond;
mod routing;
mod routing_admin;
mod run;
mod startup;
mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, post, put};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

pub use error::{ApiError, FieldError, Flavor};
pub use library_admin::{delete_cached_model, DeleteAnswer};
pub use registry::{ModelEntry, Registry};
pub use routing::{BACKEND_HEADER, FALLBACK_HEADER};
pub use startup::{Built, Opened, Services, Startup, StartupError, DATABASE_FILE};
pub use state::{ApiKey, AppState, ServerSettings};

/// All routes, behind the gate middleware.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings().max_body_bytes;
    Router::new()
        .route("/health", get(admin::health))
        .route("/metrics", get(metrics::scrape))
        .route("/v1/models", get(openai::models::list))
        .route("/v1/models/{*id}", get(openai::models::get))
        .route("/v1/chat/completions", post(routing::chat))
        .route("/v1/completions", post(routing::completions))
        .route("/v1/embeddings", post(routing::embeddings))
        .route("/v1/messages", post(routing::messages))
        .route("/admin/models", get(admin::models))
        .route("/admin/models/{*rest}", any(admin::model_action))
        .route("/admin/audit-logs", get(audit_routes::list))
        .route("/admin/audit-logs/stats", get(audit_routes::stats))
        .route("/admin/audit-logs/export", get(audit_routes::export))
        .route("/admin/providers", get(routing_admin::list_providers).post(routing_admin::create_provider))
        .route(
            "/admin/providers/{name}",
            get(routing_admin::get_provider).put(routing_admin::update_provider).delete(routing_admin::delete_provider),
        )
        .route("/admin/providers/{name}/test", post(routing_admin::test_provider))
        .route("/admin/routing-rules", get(routing_admin::list_rules).post(routing_admin::create_rule))
        .route("/admin/routing-rules/order", put(routing_admin::reorder_rules))
        .route("/admin/routing-rules/test", post(routing_admin::test_rule))
        .route("/admin/routing-rules/{id}", put(routing_admin::update_rule).delete(routing_admin::delete_rule))
        .route("/admin/settings/timeouts", get(admin::get_timeouts).put(admin::put_timeouts))
        .route("/admin/library/search", get(library_admin::search))
        .route("/admin/library/models", get(library_admin::models))
        .route("/admin/library/models/{*repo}", delete(library_admin::delete_model))
        .route("/admin/library/downloads", get(library_admin::list).post(library_admin::start))
        .route("/admin/library/downloads/{id}", get(library_admin::status).delete(library_admin::cancel))
        .route("/admin/library/downloads/{id}/pause", post(library_admin::pause))
        .route("/admin/library/downloads/{id}/resume", post(library_admin::resume))
        .route("/admin/library/downloads/{id}/progress", get(library_admin::progress))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::Extension(extract::BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::gate))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves; then answers new requests with 503 while the
/// ones in flight finish (at most `drain`), and returns.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    *state.bound.write().expect("bound lock") = listener.local_addr().ok();
    let app = router(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let drainer = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        drainer.start_draining();
        let deadline = tokio::time::Instant::now() + drain;
        while drainer.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop_tx.send(());
    });
    // Without TCP_NODELAY a streamed chunk written right after another waits for the client's
    // delayed ACK (40 ms on Linux): that was the whole of a 41 ms time to first token.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        })
        .await
}
