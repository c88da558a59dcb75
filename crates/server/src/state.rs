//! Shared server state and configuration.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use mlx_manager_core::{AuditSink, ExposeSecret, SecretString, Timeouts};
use mlx_manager_engine::EngineHandle;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::registry::Registry;

/// The key clients must send: a secret (`{:?}` prints `ApiKey([REDACTED])`), compared in
/// constant time.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Whether `given` is the key, in a time that does not depend on where they differ.
    pub fn matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.0.expose_secret().as_bytes()))
    }
}

impl ExposeSecret<str> for ApiKey {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl PartialEq for ApiKey {
    fn eq(&self, other: &ApiKey) -> bool {
        self.matches(other.0.expose_secret())
    }
}

impl From<SecretString> for ApiKey {
    fn from(key: SecretString) -> ApiKey {
        ApiKey(key)
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> ApiKey {
        ApiKey(key.into())
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> ApiKey {
        ApiKey(key.into())
    }
}

/// Settings the server reads per request; changeable while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Per-endpoint timeouts.
    pub timeouts: Timeouts,
    /// When set, every route but /health needs it (`Authorization: Bearer` or `x-api-key`).
    pub api_key: Option<ApiKey>,
    /// Browser origins allowed to call the API (CORS); empty: none.
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Serve Prometheus metrics on `/metrics`.
    pub metrics: bool,
    /// Per model id: the draft model (a registered id) that proposes its tokens unless a request
    /// names its own (speculative decoding).
    pub draft_models: std::collections::BTreeMap<String, String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            timeouts: Timeouts::default(),
            api_key: None,
            allowed_origins: Vec::new(),
            max_body_bytes: 32 << 20,
            metrics: false,
            draft_models: Default::default(),
        }
    }
}

/// Everything handlers share.
pub struct AppState {
    /// The engine thread's handle.
    pub engine: EngineHandle,
    /// Known model folders.
    pub registry: Registry,
    pub(crate) settings: RwLock<ServerSettings>,
    pub(crate) audit: Arc<dyn AuditSink>,
    /// Bounds concurrent model requests (429 beyond).
    pub(crate) admission: Arc<Semaphore>,
    pub(crate) draining: AtomicBool,
    pub(crate) in_flight: AtomicUsize,
    /// The address the listener is bound to (its host is an allowed `Host`).
    pub(crate) bound: RwLock<Option<SocketAddr>>,
    pub(crate) started: std::time::Instant,
    /// The audit log to query (set once at start-up; the audit routes answer 404 without it).
    pub audit_log: std::sync::OnceLock<mlx_manager_store::Store>,
    /// Providers and routing rules (set once at start-up; without it every model is local and
    /// the provider/rule routes answer 404).
    pub catalog: std::sync::OnceLock<Arc<mlx_manager_providers::Catalog>>,
    /// Counters and histograms for `/metrics` (kept whether or not the route is enabled).
    pub(crate) metrics: crate::metrics::Metrics,
    /// The model library: Hub search, downloads, the cache's models (set once, by
    /// [`AppState::attach_library`]; the `/admin/library` routes answer 404 without it).
    pub library: std::sync::OnceLock<mlx_manager_library::Library>,
}

impl AppState {
    /// State for a server over `engine`, recording to `audit`, admitting at most `max_concurrent`
    /// model requests at once.
    pub fn new(
        engine: EngineHandle,
        settings: ServerSettings,
        audit: Arc<dyn AuditSink>,
        max_concurrent: usize,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            engine,
            registry: Registry::default(),
            settings: RwLock::new(settings),
            audit,
            admission: Arc::new(Semaphore::new(max_concurrent)),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            bound: RwLock::new(None),
            started: std::time::Instant::now(),
            audit_log: std::sync::OnceLock::new(),
            catalog: std::sync::OnceLock::new(),
            metrics: crate::metrics::Metrics::default(),
            library: std::sync::OnceLock::new(),
        })
    }

    /// Gives this server the model library: its routes answer, every download it finishes from
    /// now on is registered at once under its repo id (while this state lives), and the ones it
    /// finished before (a listener restarted since) are registered now.
    pub fn attach_library(self: &Arc<Self>, library: mlx_manager_library::Library) {
        for done in library.downloads() {
            if let (mlx_manager_library::DownloadState::Completed, Some(path)) = (done.state, &done.path) {
                self.registry.insert(done.repo.to_string(), path);
            }
        }
        let state = Arc::downgrade(self);
        library.on_finished(move |installed| {
            if let Some(state) = state.upgrade() {
                state.registry.insert(installed.repo.to_string(), &installed.path);
                tracing::info!(model = %installed.repo, path = %installed.path.display(), "registered a downloaded model");
            }
        });
        let _ = self.library.set(library);
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> ServerSettings {
        self.settings.read().expect("settings lock").clone()
    }

    /// Replaces the timeouts; requests arriving from now on use them.
    pub fn set_timeouts(&self, timeouts: Timeouts) {
        self.settings.write().expect("settings lock").timeouts = timeouts;
    }

    /// Replaces the per-model drafts; requests arriving from now on use them.
    pub fn set_draft_models(&self, drafts: std::collections::BTreeMap<String, String>) {
        self.settings.write().expect("settings lock").draft_models = drafts;
    }

    /// Requests (and streams) still running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// From now on, new requests get 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_never_print_the_api_key_and_compare_it_whole() {
        let settings = ServerSettings { api_key: Some("sk-local-0123456789".into()), ..ServerSettings::default() };
        for text in [format!("{settings:?}"), format!("{settings:#?}")] {
            assert!(!text.contains("0123456789"), "ServerSettings prints the key: {text}");
        }
        let key = settings.api_key.expect("set above");
        assert!(key.matches("sk-local-0123456789"));
        assert!(!key.matches("sk-local-012345678") && !key.matches("sk-local-01234567890") && !key.matches(""));
    }
}
