//! `mlx-manager serve`: the headless server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mlx_manager_core::{ExposeSecret, SecretString, Timeouts};
use mlx_manager_engine::PoolConfig;
use mlx_manager_providers::SecretMode;
use mlx_manager_server::paths::default_data_dir;
use mlx_manager_server::{ServerSettings, Startup, StartupError};

#[derive(Args)]
pub struct ServeArgs {
    /// A model folder to serve (repeatable); its id is the folder's name.
    #[arg(long = "model", short = 'm')]
    models: Vec<PathBuf>,
    /// Address to bind (loopback by default: other hosts cannot reach it).
    #[arg(long, default_value = "127.0.0.1", env = "MLX_MANAGER_HOST")]
    host: String,
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 10242, env = "MLX_MANAGER_PORT")]
    port: u16,
    /// Where the database and logs live (default: the XDG data dir).
    #[arg(long, env = "MLX_MANAGER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Require this key (`Authorization: Bearer` or `x-api-key`) on every route but /health.
    #[arg(long, env = "MLX_MANAGER_API_KEY", hide_env_values = true, value_parser = secret)]
    api_key: Option<SecretString>,
    /// A browser origin allowed to call the API (repeatable).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 32 << 20)]
    max_body_bytes: usize,
    /// Chat timeout in seconds.
    #[arg(long, default_value_t = 900)]
    chat_timeout: u32,
    /// Completions timeout in seconds.
    #[arg(long, default_value_t = 600)]
    completions_timeout: u32,
    /// Embeddings timeout in seconds.
    #[arg(long, default_value_t = 120)]
    embeddings_timeout: u32,
    /// Model requests served at once before answering 429.
    #[arg(long, default_value_t = 16)]
    max_concurrent: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, default_value_t = 30)]
    drain_seconds: u64,
    /// Most models loaded at once.
    #[arg(long, default_value_t = 4)]
    max_loaded_models: usize,
    /// Memory budget for model weights in GB (default: 75 % of RAM).
    #[arg(long)]
    memory_budget_gb: Option<f64>,
    /// Unload models not pinned by a preload after this many idle seconds (off by default).
    #[arg(long)]
    idle_ttl_seconds: Option<u64>,
    /// On the CPU, run quantized models through libmlx's quantized products (mlx-lm's exact
    /// numbers, several times slower there) instead of a dequantized copy of their weights, which
    /// is used by default when it fits the memory budget. No effect on the GPU.
    #[arg(long)]
    keep_quantized: bool,
    /// Days audit entries are kept (1–365).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
    retention_days: u32,
    /// Do not register models found in the Hugging Face cache.
    #[arg(long)]
    no_hf_cache: bool,
    /// Speculative decoding: `MODEL=DRAFT` (registered ids) has DRAFT propose MODEL's tokens,
    /// unless a request names its own `draft_model` (repeatable).
    #[arg(long = "draft-model", value_name = "MODEL=DRAFT", value_parser = draft_pair)]
    draft_models: Vec<(String, String)>,
    /// Load (and pin) this registered model id at start-up, in the background (repeatable).
    #[arg(long = "preload", value_name = "ID")]
    preload: Vec<String>,
    /// Where provider API keys are kept: the OS keychain when it answers (auto), only the
    /// keychain, or only the encrypted file in the data dir.
    #[arg(long, default_value = "auto", env = "MLX_MANAGER_KEY_STORAGE", value_parser = ["auto", "keychain", "file"])]
    key_storage: String,
    /// Export request spans to this OpenTelemetry collector (OTLP/HTTP base URL, e.g.
    /// http://127.0.0.1:4318); off by default, and nothing is sent when off.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Serve Prometheus metrics on /metrics (behind the API key when one is set).
    #[arg(long, env = "MLX_MANAGER_METRICS")]
    metrics: bool,
}

/// `--api-key`'s text goes straight into a secret (never a plain `String`).
fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid --host/--port: {0}")]
    Address(String),
    #[error("no data directory: set --data-dir or HOME")]
    NoDataDir,
    #[error(transparent)]
    Telemetry(#[from] mlx_manager_telemetry::TelemetryError),
    #[error("--preload {0}: no such model is registered (use its folder name or Hugging Face repo id)")]
    UnknownPreload(String),
    #[error("--draft-model {0}: no such model is registered (use its folder name or Hugging Face repo id)")]
    UnknownDraft(String),
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// `MODEL=DRAFT`.
fn draft_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((model, draft)) if !model.is_empty() && !draft.is_empty() => Ok((model.into(), draft.into())),
        _ => Err("expected MODEL=DRAFT (two registered model ids)".into()),
    }
}

pub fn run(a: ServeArgs) -> Result<(), ServeError> {
    let data_dir = a.data_dir.clone().or_else(default_data_dir).ok_or(ServeError::NoDataDir)?;
    let _logging = mlx_manager_telemetry::init(&data_dir, "warn", a.otlp_endpoint.as_deref())?;
    let defaults = PoolConfig::default();
    let pool = PoolConfig {
        max_loaded_models: a.max_loaded_models.max(1),
        memory_budget_bytes: a.memory_budget_gb.map(|gb| (gb * 1e9) as u64).or(defaults.memory_budget_bytes),
        idle_ttl: a.idle_ttl_seconds.map(Duration::from_secs),
        dense_on_cpu: !a.keep_quantized,
    };
    let opened = Startup {
        data_dir,
        retention_days: a.retention_days,
        models: a.models.clone(),
        scan_hf_cache: !a.no_hf_cache,
        key_storage: SecretMode::parse(&a.key_storage).unwrap_or(SecretMode::Auto),
    }
    .open()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let built = runtime.block_on(opened.build(pool))?;
    let settings = ServerSettings {
        timeouts: Timeouts {
            chat_seconds: a.chat_timeout,
            completions_seconds: a.completions_timeout,
            embeddings_seconds: a.embeddings_timeout,
        },
        api_key: a.api_key.filter(|k| !k.expose_secret().is_empty()).map(Into::into),
        allowed_origins: a.allowed_origins,
        max_body_bytes: a.max_body_bytes,
        metrics: a.metrics,
        draft_models: a.draft_models.iter().cloned().collect(),
    };
    let state = built.services.app_state(settings, a.max_concurrent);
    let preload = a
        .preload
        .iter()
        .map(|id| state.registry.get(id).ok_or_else(|| ServeError::UnknownPreload(id.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    a.draft_models
        .iter()
        .flat_map(|(model, draft)| [model, draft])
        .find(|id| state.registry.get(id).is_none())
        .map_or(Ok(()), |id| Err(ServeError::UnknownDraft(id.clone())))?;
    runtime.block_on(async {
        let addr: SocketAddr = format!("{}:{}", a.host, a.port)
            .parse()
            .or_else(|_| format!("[{}]:{}", a.host, a.port).parse())
            .map_err(|e: std::net::AddrParseError| ServeError::Address(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        println!("listening on http://{local}");
        let handle = built.services.engine.clone();
        tokio::spawn(async move {
            for entry in preload {
                match handle.preload(&entry.id, &entry.path).await {
                    Ok(info) => tracing::info!(model = %info.id, bytes = info.weight_bytes, "preloaded"),
                    Err(e) => tracing::error!(model = %entry.id, error = %e, "preload failed"),
                }
            }
        });
        mlx_manager_server::serve(listener, state, shutdown_signal(), Duration::from_secs(a.drain_seconds)).await?;
        Ok::<_, ServeError>(())
    })?;
    drop(built);
    Ok(())
}
