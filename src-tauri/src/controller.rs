//! What the shell does, independent of Tauri: owns the engine, the store and the HTTP listener,
//! keeps the settings, and publishes changes on channels the shell turns into events. Commands are
//! thin wrappers over these methods, so tests can drive them with or without a window.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mlx_manager_core::{AuditFilter, AuditPage, AuditStats, Timeouts};
use mlx_manager_engine::{Engine, EngineHandle};
use mlx_manager_providers::{Catalog, SecretMode};
use mlx_manager_server::{AppState, Built, ModelEntry, ServerSettings, Services, Startup};
use mlx_manager_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot, watch};

use crate::error::CommandError;
use crate::models::ModelPool;
use crate::settings::{
    validate_timeouts, AppSettings, DesktopSettings, PoolSettings, ServerConfig, DESKTOP_KEY, POOL_KEY, SERVER_KEY,
    TIMEOUTS_KEY,
};

/// Seconds in-flight requests get to finish when the listener stops, restarts or the app quits:
/// `mlx-manager serve`'s default drain on SIGTERM (the design's 30 s), through the same
/// `mlx_manager_server::serve`.
const DRAIN: Duration = Duration::from_secs(30);
/// Model requests served at once before answering 429.
const MAX_CONCURRENT: usize = 16;

/// Is the HTTP endpoint up?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct ServerStatus {
    /// Accepting requests.
    pub running: bool,
    /// `http://host:port` while running.
    pub url: Option<String>,
    /// Why it is not running, when it failed.
    pub error: Option<String>,
}

impl ServerStatus {
    fn stopped(error: Option<String>) -> ServerStatus {
        ServerStatus { running: false, url: None, error }
    }

    /// The tray's status line.
    pub fn line(&self) -> String {
        match (&self.url, &self.error) {
            (Some(url), _) => format!("Serving on {}", url.trim_start_matches("http://")),
            (None, Some(e)) => format!("Stopped: {e}"),
            (None, None) => "Stopped".to_string(),
        }
    }
}

/// What the shell is started with (command line, tests).
#[derive(Debug, Clone, Default)]
pub struct ControllerOptions {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Model folders to register (id = folder name).
    pub models: Vec<PathBuf>,
    /// Also register models from the Hugging Face cache.
    pub scan_hf_cache: bool,
    /// Use this port for this run instead of the saved one (not saved).
    pub port_override: Option<u16>,
    /// Where provider keys go (the keychain when one answers, by default).
    pub key_storage: SecretMode,
}

/// Changes the shell forwards to the window and the tray.
#[derive(Debug, Clone)]
pub enum Change {
    /// Settings were saved.
    Settings(AppSettings),
    /// An export wrote more rows.
    ExportProgress {
        /// The file.
        path: String,
        /// Rows so far.
        rows: u64,
    },
    /// A download's status changed (progress at most four times a second, every change of state).
    Download(crate::library::Download),
}

struct Listener {
    state: Arc<AppState>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    /// Where the database lives (and the models the app writes itself, under `models/`).
    data_dir: PathBuf,
    /// The store, the engine's handle, the models and the catalog every listener is built from.
    services: Services,
    engine_owner: Mutex<Option<Engine>>,
    settings: RwLock<AppSettings>,
    listener: tokio::sync::Mutex<Option<Listener>>,
    status: watch::Sender<ServerStatus>,
    changes: broadcast::Sender<Change>,
    /// Downloads whose progress is being forwarded (one watcher each).
    watched: Mutex<std::collections::HashSet<String>>,
    /// Serialises read-modify-write of the saved download list.
    saving: tokio::sync::Mutex<()>,
    /// Models downloaded since start-up (the start-up list in `services.models` is fixed).
    downloaded: mlx_manager_server::Registry,
}

/// Settings key of the downloads to restart on launch.
const DOWNLOADS_KEY: &str = "library_downloads";

/// A download started from this app and not finished yet: restarted on the next launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDownload {
    /// `org/name`.
    pub repo: String,
    /// The revision asked for.
    pub revision: String,
    /// The user paused it (it comes back paused).
    pub paused: bool,
}

/// The shell's state; cheap to clone.
#[derive(Clone)]
pub struct Controller(Arc<Inner>);

impl Controller {
    /// Opens the store in `data_dir`, loads the saved settings (defaults for missing or unreadable
    /// ones), starts the engine with the saved pool limits and registers the model folders. The
    /// listener is not started yet ([`Controller::start_server`]).
    pub async fn open(options: ControllerOptions) -> Result<Controller, CommandError> {
        let data_dir = options.data_dir.clone();
        let opened = Startup {
            data_dir: options.data_dir,
            retention_days: mlx_manager_store::DEFAULT_RETENTION_DAYS,
            models: options.models,
            scan_hf_cache: options.scan_hf_cache,
            key_storage: options.key_storage,
        }
        .open()?;
        let store = opened.store();
        let mut settings = AppSettings {
            server: load_or_default(store, SERVER_KEY).await,
            timeouts: load_or_default(store, TIMEOUTS_KEY).await,
            pool: load_or_default(store, POOL_KEY).await,
            desktop: load_or_default(store, DESKTOP_KEY).await,
        };
        if let Some(port) = options.port_override {
            settings.server.port = port;
        }
        let Built { engine, services } = opened.build(settings.pool.to_pool_config()).await?;
        let (status, _) = watch::channel(ServerStatus::stopped(None));
        let (changes, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            data_dir,
            services,
            engine_owner: Mutex::new(Some(engine)),
            settings: RwLock::new(settings),
            listener: tokio::sync::Mutex::new(None),
            status,
            changes,
            watched: Mutex::new(Default::default()),
            saving: tokio::sync::Mutex::new(()),
            downloaded: mlx_manager_server::Registry::default(),
        });
        // A finished download can be loaded from the window at once (the listeners register it
        // themselves).
        if let Some(library) = &inner.services.library {
            let weak = Arc::downgrade(&inner);
            library.on_finished(move |installed| {
                if let Some(inner) = weak.upgrade() {
                    inner.downloaded.insert(installed.repo.to_string(), &installed.path);
                }
            });
        }
        let ctl = Controller(inner);
        // Models the app wrote itself (the first-run tiny model) are served on every launch.
        for (id, path) in crate::first_run::own_models(&ctl.own_models_dir()) {
            ctl.0.downloaded.insert(id, path);
        }
        Ok(ctl)
    }

    /// Where the app writes models of its own (`<data dir>/models`).
    pub fn own_models_dir(&self) -> PathBuf {
        self.0.data_dir.join("models")
    }

    /// Makes a model folder of the app's own loadable under `id`: from the window, by the
    /// running listener, and (being in [`Controller::own_models_dir`]) by every later one.
    pub async fn register_model(&self, id: &str, path: &std::path::Path) {
        self.0.downloaded.insert(id.to_string(), path);
        if let Some(listener) = self.0.listener.lock().await.as_ref() {
            listener.state.registry.insert(id.to_string(), path);
        }
    }

    /// The audit store (for live subscriptions).
    pub fn store(&self) -> &Store {
        &self.0.services.store
    }

    /// Providers and routing rules (shared with the HTTP listener: edits apply to the next request).
    pub fn catalog(&self) -> &Catalog {
        &self.0.services.catalog
    }

    /// The engine (for pool-change notifications).
    pub fn engine(&self) -> &EngineHandle {
        &self.0.services.engine
    }

    /// Server status, updated on every start, stop and failure.
    pub fn status_updates(&self) -> watch::Receiver<ServerStatus> {
        self.0.status.subscribe()
    }

    /// Settings changes and export progress.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.0.changes.subscribe()
    }

    /// The current settings.
    pub fn settings(&self) -> AppSettings {
        self.0.settings.read().expect("settings lock").clone()
    }

    /// Whether the listener is up, and where.
    pub fn server_status(&self) -> ServerStatus {
        self.0.status.borrow().clone()
    }

    /// Binds the saved address and serves; a no-op when already serving.
    pub async fn start_server(&self) -> Result<ServerStatus, CommandError> {
        let mut slot = self.0.listener.lock().await;
        if slot.is_some() {
            return Ok(self.server_status());
        }
        let settings = self.settings();
        let address = settings.server.address();
        let bound = match tokio::net::TcpListener::bind(&address).await {
            Ok(l) => l,
            Err(e) => {
                let error = CommandError::Bind { address, message: e.to_string() };
                self.0.status.send_replace(ServerStatus::stopped(Some(error.to_string())));
                return Err(error);
            }
        };
        let url = bound.local_addr().map(|a| format!("http://{a}")).unwrap_or_else(|_| format!("http://{address}"));
        let state = self.0.services.app_state(server_settings(&settings), MAX_CONCURRENT);
        for (id, path) in crate::first_run::own_models(&self.own_models_dir()) {
            state.registry.insert(id, path);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let status = self.0.status.clone();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            let result = mlx_manager_server::serve(
                bound,
                serving,
                async move {
                    let _ = stopped.await;
                },
                DRAIN,
            )
            .await;
            status.send_replace(ServerStatus::stopped(result.err().map(|e| e.to_string())));
        });
        *slot = Some(Listener { state, stop, task });
        tracing::info!(%url, "serving");
        let running = ServerStatus { running: true, url: Some(url), error: None };
        self.0.status.send_replace(running.clone());
        Ok(running)
    }

    /// Stops accepting requests (503 meanwhile), lets in-flight ones finish (up to 30 s) and
    /// closes the listener.
    pub async fn stop_server(&self) -> ServerStatus {
        if let Some(listener) = self.0.listener.lock().await.take() {
            let _ = listener.stop.send(());
            let _ = listener.task.await;
            tracing::info!("server stopped");
        }
        self.0.status.send_replace(ServerStatus::stopped(None));
        self.server_status()
    }

    /// Validates and saves new listener settings and (re)starts the listener on them. When the new
    /// address cannot be bound, nothing is saved and the previous listener serves again.
    pub async fn apply_server_config(&self, config: ServerConfig) -> Result<ServerStatus, CommandError> {
        config.validate()?;
        let was_running = self.server_status().running;
        let previous = self.settings().server;
        self.stop_server().await;
        self.0.settings.write().expect("settings lock").server = config.clone();
        if let Err(e) = self.start_server().await {
            self.0.settings.write().expect("settings lock").server = previous;
            if was_running {
                let _ = self.start_server().await;
            }
            self.0.status.send_modify(|s| s.error = Some(e.to_string()));
            return Err(e);
        }
        self.0.services.store.put_setting(SERVER_KEY, &config).await?;
        self.publish_settings();
        Ok(self.server_status())
    }

    /// Validates, saves and applies new timeouts (to requests arriving from now on).
    pub async fn set_timeouts(&self, timeouts: Timeouts) -> Result<Timeouts, CommandError> {
        validate_timeouts(&timeouts)?;
        self.0.services.store.put_setting(TIMEOUTS_KEY, &timeouts).await?;
        self.0.settings.write().expect("settings lock").timeouts = timeouts;
        if let Some(listener) = self.0.listener.lock().await.as_ref() {
            listener.state.set_timeouts(timeouts);
        }
        self.publish_settings();
        Ok(timeouts)
    }

    /// Validates, saves and applies new pool limits, start-up models and drafts (a running
    /// listener serves the new drafts from its next request on).
    pub async fn set_pool_settings(&self, pool: PoolSettings) -> Result<PoolSettings, CommandError> {
        pool.validate()?;
        for id in pool.preload.iter().chain(pool.drafts.iter().flat_map(|(model, draft)| [model, draft])) {
            self.entry(id)?;
        }
        self.0.services.store.put_setting(POOL_KEY, &pool).await?;
        self.0.services.engine.set_pool(pool.to_pool_config()).map_err(|e| CommandError::from_engine(e, ""))?;
        let previous = std::mem::replace(&mut self.0.settings.write().expect("settings lock").pool, pool.clone());
        self.publish_settings();
        if previous.drafts != pool.drafts {
            if let Some(listener) = self.0.listener.lock().await.as_ref() {
                listener.state.set_draft_models(pool.drafts.clone());
            }
        }
        Ok(pool)
    }

    /// The settings the running listener serves with: its own copy, read per request (None when
    /// no listener is up).
    pub async fn served_settings(&self) -> Option<ServerSettings> {
        self.0.listener.lock().await.as_ref().map(|l| l.state.settings())
    }

    /// Saves the desktop settings (the shell applies them to the OS first).
    pub async fn set_desktop_settings(&self, desktop: DesktopSettings) -> Result<DesktopSettings, CommandError> {
        self.0.services.store.put_setting(DESKTOP_KEY, &desktop).await?;
        self.0.settings.write().expect("settings lock").desktop = desktop;
        self.publish_settings();
        Ok(desktop)
    }

    fn publish_settings(&self) {
        let _ = self.0.changes.send(Change::Settings(self.settings()));
    }

    /// Known and loaded models.
    pub async fn model_pool(&self) -> Result<ModelPool, CommandError> {
        let loaded = self.0.services.engine.list().await.map_err(|e| CommandError::from_engine(e, ""))?;
        let budget = self.settings().pool.to_pool_config().memory_budget_bytes;
        Ok(ModelPool::new(&self.models(), loaded, budget))
    }

    /// Every model the window can load, by id: the start-up ones still on disk (a deleted one is
    /// not offered) and the ones downloaded since (which replace a start-up entry of that id).
    fn models(&self) -> Vec<ModelEntry> {
        let mut all: std::collections::BTreeMap<String, ModelEntry> =
            self.0.services.models.iter().filter(|e| e.path.exists()).map(|e| (e.id.clone(), e.clone())).collect();
        all.extend(self.0.downloaded.list().into_iter().map(|e| (e.id.clone(), e)));
        all.into_values().collect()
    }

    fn entry(&self, id: &str) -> Result<ModelEntry, CommandError> {
        self.models()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| CommandError::ModelNotFound { model: id.to_string() })
    }

    /// Loads a model and pins it (never evicted until unpinned or unloaded).
    pub async fn preload_model(&self, id: &str) -> Result<ModelPool, CommandError> {
        let entry = self.entry(id)?;
        self.0.services.engine.preload(&entry.id, &entry.path).await.map_err(|e| CommandError::from_engine(e, id))?;
        self.model_pool().await
    }

    /// Loads and pins the models the settings list for start-up, in order. A model that is no
    /// longer registered or fails to load is skipped (and logged); the others still load.
    pub async fn preload_startup(&self) -> Vec<(String, CommandError)> {
        let mut failed = Vec::new();
        for id in self.settings().pool.preload {
            if let Err(e) = self.preload_model(&id).await {
                tracing::warn!(model = %id, error = %e, "start-up preload failed");
                failed.push((id, e));
            }
        }
        failed
    }

    /// Unloads a model (its running requests are cancelled) and frees its memory.
    pub async fn unload_model(&self, id: &str) -> Result<ModelPool, CommandError> {
        self.entry(id)?;
        self.0.services.engine.unload(id).await.map_err(|e| CommandError::from_engine(e, id))?;
        self.model_pool().await
    }

    /// Pins or unpins a loaded model.
    pub async fn set_pinned(&self, id: &str, pinned: bool) -> Result<ModelPool, CommandError> {
        self.entry(id)?;
        let loaded =
            self.0.services.engine.set_pinned(id, pinned).await.map_err(|e| CommandError::from_engine(e, id))?;
        if !loaded {
            return Err(CommandError::invalid("id", format!("`{id}` is not loaded")));
        }
        self.model_pool().await
    }

    /// One page of the audit log, newest first.
    pub async fn audit_page(
        &self,
        filter: AuditFilter,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<AuditPage, CommandError> {
        Store::validate(&filter)?;
        let limit = limit.map(|l| l as usize).unwrap_or(mlx_manager_store::DEFAULT_LIMIT);
        if !(1..=mlx_manager_store::MAX_LIMIT).contains(&limit) {
            return Err(CommandError::invalid("limit", format!("must be 1 to {}", mlx_manager_store::MAX_LIMIT)));
        }
        Ok(self.0.services.store.list(filter, cursor, limit).await?)
    }

    /// Aggregates for the same filters as the list.
    pub async fn audit_stats(&self, filter: AuditFilter) -> Result<AuditStats, CommandError> {
        Store::validate(&filter)?;
        Ok(self.0.services.store.stats(filter).await?)
    }

    /// Writes the filtered entries to `path`, reporting progress as [`Change::ExportProgress`].
    pub async fn export_audit(
        &self,
        filter: AuditFilter,
        format: crate::export::ExportFormat,
        path: String,
    ) -> Result<crate::export::ExportResult, CommandError> {
        Store::validate(&filter)?;
        crate::export::export(&self.0.services.store, self.0.changes.clone(), filter, format, path).await
    }

    /// The model library, or why there is none.
    pub fn library(&self) -> Result<&mlx_manager_library::Library, CommandError> {
        self.0.services.library.as_ref().ok_or_else(|| CommandError::Library {
            code: "library_unavailable".into(),
            message: "the model library is unavailable (no Hugging Face cache directory; see the log)".into(),
        })
    }

    /// Forwards a download's status changes as [`Change::Download`] until it completes or is
    /// cancelled (a paused or failed one is watched on, so a resume needs no new watcher), and
    /// keeps the saved list of unfinished downloads ([`SavedDownload`]) in step with it.
    pub fn watch_download(&self, id: &str) {
        let Ok(lib) = self.library() else { return };
        let Ok(mut rx) = lib.watch(id) else { return };
        if !self.0.watched.lock().expect("watched lock").insert(id.to_string()) {
            return;
        }
        let (ctl, id) = (Arc::downgrade(&self.0), id.to_string());
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let status = rx.borrow_and_update().clone();
                let finished = status.state.is_final();
                let Some(inner) = ctl.upgrade() else { return };
                let ctl = Controller(inner);
                if last != Some(status.state) {
                    last = Some(status.state);
                    ctl.save_download(&status).await;
                }
                let _ = ctl.0.changes.send(Change::Download(status.into()));
                drop(ctl);
                if finished || rx.changed().await.is_err() {
                    break;
                }
            }
            if let Some(inner) = ctl.upgrade() {
                inner.watched.lock().expect("watched lock").remove(&id);
            }
        });
    }

    /// Records a download's state in the saved list: unfinished ones are kept (with whether the
    /// user paused them), completed and cancelled ones dropped.
    async fn save_download(&self, status: &mlx_manager_library::DownloadStatus) {
        use mlx_manager_library::DownloadState as S;
        let entry = SavedDownload { repo: status.repo.to_string(), revision: status.revision.clone(), paused: false };
        let _guard = self.0.saving.lock().await;
        let mut saved: Vec<SavedDownload> = load_or_default(&self.0.services.store, DOWNLOADS_KEY).await;
        let before = saved.clone();
        saved.retain(|d| !(d.repo == entry.repo && d.revision == entry.revision));
        match status.state {
            S::Completed | S::Cancelled => {}
            S::Paused => saved.push(SavedDownload { paused: true, ..entry }),
            S::Queued | S::Running | S::Failed => saved.push(entry),
        }
        if saved != before {
            if let Err(e) = self.0.services.store.put_setting(DOWNLOADS_KEY, &saved).await {
                tracing::warn!(error = %e, "saving the list of downloads");
            }
        }
    }

    /// Starts again the downloads that were unfinished when the app last quit (a paused one is
    /// planned again and paused, so the window shows it with Resume); each goes on from the bytes
    /// it has. Returns the ones that could not be restarted (logged).
    pub async fn restart_saved_downloads(&self) -> Vec<(String, CommandError)> {
        let Ok(lib) = self.library() else { return Vec::new() };
        let saved: Vec<SavedDownload> = load_or_default(&self.0.services.store, DOWNLOADS_KEY).await;
        let mut failed = Vec::new();
        for d in saved {
            let started = async {
                let repo = mlx_manager_library::RepoId::parse(&d.repo)?;
                let status = lib.start(&repo, &d.revision).await?;
                if d.paused {
                    lib.pause(&status.id).await?;
                }
                Ok::<_, mlx_manager_library::LibraryError>(status.id)
            }
            .await;
            match started {
                Ok(id) => {
                    tracing::info!(repo = %d.repo, revision = %d.revision, paused = d.paused, "restarted a download");
                    self.watch_download(&id);
                }
                Err(e) => {
                    tracing::warn!(repo = %d.repo, error = %e, "could not restart a download");
                    failed.push((d.repo.clone(), e.into()));
                }
            }
        }
        failed
    }

    /// Deletes a model from the library's caches by the server's rules (refused while loaded
    /// unless `force`), keeping the running listener's registry in step.
    pub async fn delete_model(
        &self,
        repo: &mlx_manager_library::RepoId,
        force: bool,
    ) -> Result<mlx_manager_server::DeleteAnswer, CommandError> {
        let lib = self.library()?;
        let state = self.0.listener.lock().await.as_ref().map(|l| l.state.clone());
        let registry = state.as_ref().map(|s| &s.registry);
        let answer = mlx_manager_server::delete_cached_model(lib, &self.0.services.engine, registry, repo, None, force)
            .await
            .map_err(CommandError::from)?;
        let id = repo.to_string();
        if self.0.downloaded.remove(&id).is_some() {
            // Another cache may still hold a servable copy.
            if let Some(path) = lib.installed().into_iter().find(|r| &r.repo == repo).and_then(|r| r.servable) {
                self.0.downloaded.insert(id, path);
            }
        }
        Ok(answer)
    }

    /// Stops the listener and the engine (on quit).
    pub async fn shutdown(&self) {
        self.stop_server().await;
        let engine = self.0.engine_owner.lock().expect("engine lock").take();
        drop(engine);
    }
}

/// The server's settings for the app's: the listener's API key and origins, the timeouts, the
/// pool's per-model drafts.
fn server_settings(settings: &AppSettings) -> ServerSettings {
    ServerSettings {
        timeouts: settings.timeouts,
        api_key: settings.server.api_key.clone().map(Into::into),
        allowed_origins: settings.server.allowed_origins.clone(),
        metrics: settings.server.metrics,
        draft_models: settings.pool.drafts.clone(),
        ..ServerSettings::default()
    }
}

async fn load_or_default<T: serde::de::DeserializeOwned + Default + Send + 'static>(store: &Store, key: &str) -> T {
    match store.setting(key).await {
        Ok(Some(v)) => v,
        Ok(None) => T::default(),
        Err(e) => {
            tracing::warn!(key, error = %e, "saved setting unreadable; using defaults");
            T::default()
        }
    }
}
