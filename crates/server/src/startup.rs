//! The start-up wiring both binaries share: the data dir and the database, the engine, the model
//! folders, the key storage and the routing catalog, and from those a server's [`AppState`].
//!
//! Why here: `mlx-manager serve` and the desktop shell start the same things in the same order;
//! only where their settings come from differs (the CLI's flags, the shell's saved settings), so
//! those are the builder's inputs. It takes two steps because the shell reads the pool limits
//! the engine starts with from the database the first step opens:
//!
//! ```text
//! Startup { .. }.open()? -> Opened (the store)  --build(pool).await?-->  Built { engine, services }
//! services.app_state(settings, max_concurrent) -> Arc<AppState>   (once, or per listener restart)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use mlx_manager_engine::{Engine, EngineError, EngineHandle, PoolConfig};
use mlx_manager_library::{DownloadOptions, HubConfig, Library};
use mlx_manager_providers::{Catalog, ProviderError, SecretMode, Secrets};
use mlx_manager_store::{Store, StoreError};

use crate::registry::{ModelEntry, Registry};
use crate::state::{AppState, ServerSettings};

/// The database's file name in the data dir.
pub const DATABASE_FILE: &str = "mlx-manager.db";

/// What a start-up failed on.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data dir could not be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// The database could not be opened (or is from a newer version, or damaged).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine thread did not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The key storage or the saved providers and rules could not be read.
    #[error(transparent)]
    Providers(#[from] ProviderError),
}

/// What to start: everything the two binaries decide differently.
#[derive(Debug, Clone)]
pub struct Startup {
    /// Where the database (and, without a keychain, the encrypted key file) live; created when
    /// missing.
    pub data_dir: PathBuf,
    /// Days audit entries are kept (1–365).
    pub retention_days: u32,
    /// Model folders to register (id = the folder's name).
    pub models: Vec<PathBuf>,
    /// Also register the models found in the Hugging Face cache.
    pub scan_hf_cache: bool,
    /// Where provider keys are kept.
    pub key_storage: SecretMode,
}

impl Startup {
    /// Creates the data dir and opens (creating, migrating) the database. Nothing else starts yet:
    /// the caller may read saved settings from [`Opened::store`] first.
    pub fn open(self) -> Result<Opened, StartupError> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|source| StartupError::DataDir { path: self.data_dir.clone(), source })?;
        let store = Store::open(&self.data_dir.join(DATABASE_FILE), self.retention_days)?;
        tracing::info!(database = %store.path().display(), "audit log");
        Ok(Opened { startup: self, store })
    }
}

/// The database is open; the engine is not started yet.
pub struct Opened {
    startup: Startup,
    store: Store,
}

impl Opened {
    /// The open database (for reading saved settings before [`Opened::build`]).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts the engine with `pool`, registers the model folders, opens the key storage and loads
    /// the saved providers and routing rules.
    pub async fn build(self, pool: PoolConfig) -> Result<Built, StartupError> {
        let Opened { startup, store } = self;
        let engine = Engine::start_with(pool)?;
        let registry = Registry::default();
        if startup.scan_hf_cache {
            for hub in crate::paths::hf_hub_dirs() {
                let n = registry.scan_hf_cache(&hub);
                if n > 0 {
                    tracing::info!(hub = %hub.display(), models = n, "registered models from the Hugging Face cache");
                }
            }
        }
        for path in &startup.models {
            let id = registry.insert_folder(path);
            tracing::info!(model = %id, path = %path.display(), "registered");
        }
        let secrets = Secrets::open(&startup.data_dir, startup.key_storage)?;
        let catalog = Catalog::open(Arc::new(store.clone()), secrets).await?;
        tracing::info!(
            providers = catalog.providers().len(),
            rules = catalog.rules().len(),
            keys = ?catalog.key_storage(),
            "routing"
        );
        let library = open_library();
        let services =
            Services { engine: engine.handle(), store, models: registry.list(), catalog: Arc::new(catalog), library };
        Ok(Built { engine, services })
    }
}

/// Everything started.
pub struct Built {
    /// The engine thread's owner: dropping it stops the engine (after the listeners).
    pub engine: Engine,
    /// What listeners are made of.
    pub services: Services,
}

/// What a server's state is made of; cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The engine thread's handle.
    pub engine: EngineHandle,
    /// The database: the audit log and the saved settings.
    pub store: Store,
    /// The registered models, sorted by id.
    pub models: Vec<ModelEntry>,
    /// Providers and routing rules, shared by every listener (edits apply to the next request).
    pub catalog: Arc<Catalog>,
    /// The model library (Hub search and downloads into the Hugging Face cache), shared by
    /// every listener so downloads go on across listener restarts; None when it could not be
    /// set up (logged).
    pub library: Option<Library>,
}

/// The model library over the environment's Hugging Face settings (`HF_HUB_CACHE`/`HF_HOME`,
/// `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE`); its scans and deletes also cover the caches
/// the start-up scan reads.
fn open_library() -> Option<Library> {
    let opened = HubConfig::from_env().and_then(|config| {
        let options = DownloadOptions { extra_caches: crate::paths::hf_hub_dirs(), ..DownloadOptions::default() };
        Library::new(config, options)
    });
    match opened {
        Ok(library) => {
            let config = library.config();
            tracing::info!(cache = %config.cache_dir.display(), endpoint = %config.endpoint, offline = config.offline, "model library");
            Some(library)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the model library is unavailable");
            None
        }
    }
}

impl Services {
    /// The state of a server over these: requests audited to the store, the audit routes reading
    /// it, routing from the catalog, every registered model still on disk known, and the model
    /// library attached (its finished downloads registered).
    pub fn app_state(&self, settings: ServerSettings, max_concurrent: usize) -> Arc<AppState> {
        let state = AppState::new(self.engine.clone(), settings, Arc::new(self.store.clone()), max_concurrent.max(1));
        let _ = state.audit_log.set(self.store.clone());
        let _ = state.catalog.set(self.catalog.clone());
        // A model deleted since start-up is not offered again.
        for entry in self.models.iter().filter(|e| e.path.exists()) {
            state.registry.insert_entry(entry.clone());
        }
        if let Some(library) = &self.library {
            state.attach_library(library.clone());
        }
        state
    }
}
