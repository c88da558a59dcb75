//! The settings the window edits, their defaults, validation, and where they are stored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mlx_manager_core::{ExposeSecret, SecretString, Timeouts, TIMEOUT_SECONDS_RANGE};
use serde::{Deserialize, Serialize};

use crate::error::CommandError;

/// Settings keys in the store.
pub(crate) const SERVER_KEY: &str = "server";
pub(crate) const TIMEOUTS_KEY: &str = "timeouts";
pub(crate) const POOL_KEY: &str = "pool";
pub(crate) const DESKTOP_KEY: &str = "desktop";

/// The HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
pub struct ServerConfig {
    /// Address to bind (an IP address or `localhost`).
    pub host: String,
    /// Port (0 picks a free one).
    pub port: u16,
    /// When set, clients must send it (`Authorization: Bearer` or `x-api-key`).
    // A secret in memory (`{:?}` prints it redacted); written out as text only to the store and
    // to the settings window, which shows it.
    #[serde(serialize_with = "mlx_manager_core::secret::serialize_exposed")]
    #[specta(type = Option<String>)]
    pub api_key: Option<SecretString>,
    /// Browser origins allowed to call the API.
    pub allowed_origins: Vec<String>,
    /// Serve Prometheus metrics on `/metrics` (behind the API key when one is set).
    #[serde(default)]
    pub metrics: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 10242,
            api_key: None,
            allowed_origins: Vec::new(),
            metrics: false,
        }
    }
}

/// Limits of the model pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct PoolSettings {
    /// Most models loaded at once (1–64).
    pub max_loaded_models: u32,
    /// Memory budget for weights in GB; None: 75 % of RAM.
    pub memory_budget_gb: Option<f64>,
    /// Unload unpinned models idle this long (10 s – 7 days); None: never.
    pub idle_ttl_seconds: Option<u32>,
    /// Models loaded (and pinned) when the app starts, in this order.
    #[serde(default)]
    pub preload: Vec<String>,
    /// Per model id, the draft model (another registered id) that proposes its tokens for
    /// speculative decoding unless a request names its own `draft_model`; the server's
    /// `draft_models` (`serve --draft-model MODEL=DRAFT`).
    #[serde(default)]
    pub drafts: BTreeMap<String, String>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_loaded_models: 4,
            memory_budget_gb: None,
            idle_ttl_seconds: None,
            preload: Vec::new(),
            drafts: BTreeMap::new(),
        }
    }
}

/// How the app sits in the desktop: both off by default (a menu-bar agent started by hand).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub struct DesktopSettings {
    /// Start the app (in the menu bar / tray, no window) when the user logs in; applied through
    /// the OS's login items (a launch agent on macOS, an XDG autostart entry on Linux).
    pub launch_at_login: bool,
    /// Show a Dock icon while the app runs (macOS: activation policy Regular instead of
    /// Accessory). Stored everywhere; it has no effect on Linux, which has no Dock.
    pub show_dock_icon: bool,
}

/// Everything the settings window edits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, specta::Type)]
pub struct AppSettings {
    /// The listener.
    pub server: ServerConfig,
    /// Per-endpoint request timeouts.
    pub timeouts: Timeouts,
    /// The model pool.
    pub pool: PoolSettings,
    /// Launch at login and the Dock icon.
    pub desktop: DesktopSettings,
}

impl ServerConfig {
    /// Checks every field; the first problem is a typed error naming its field.
    pub fn validate(&self) -> Result<(), CommandError> {
        if self.host != "localhost" && self.host.parse::<IpAddr>().is_err() {
            return Err(CommandError::invalid("host", "must be an IP address (such as 127.0.0.1) or localhost"));
        }
        if let Some(key) = self.api_key.as_ref().map(ExposeSecret::expose_secret) {
            if key.len() < 8 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(CommandError::invalid("api_key", "must be at least 8 characters, without spaces"));
            }
        }
        for origin in &self.allowed_origins {
            let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains('/') => {}
                _ => {
                    return Err(CommandError::invalid(
                        "allowed_origins",
                        format!("`{origin}` is not an origin like http://localhost:3000 (scheme and host, no path)"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// `host:port` for binding.
    pub fn address(&self) -> String {
        let host = if self.host == "localhost" { "127.0.0.1" } else { &self.host };
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{host}]:{}", self.port),
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// Checks timeouts against the allowed range.
pub fn validate_timeouts(t: &Timeouts) -> Result<(), CommandError> {
    match t.out_of_range() {
        Some(field) => Err(CommandError::invalid(
            field,
            format!("must be between {} and {} seconds", TIMEOUT_SECONDS_RANGE.start(), TIMEOUT_SECONDS_RANGE.end()),
        )),
        None => Ok(()),
    }
}

impl PoolSettings {
    /// Checks every field against its range (that the ids are registered models is the
    /// controller's check).
    pub fn validate(&self) -> Result<(), CommandError> {
        if !(1..=64).contains(&self.max_loaded_models) {
            return Err(CommandError::invalid("max_loaded_models", "must be between 1 and 64"));
        }
        if let Some(gb) = self.memory_budget_gb {
            let total_gb = mlx_manager_engine::total_memory().map(|b| b as f64 / 1e9);
            if !gb.is_finite() || gb <= 0.0 || total_gb.is_some_and(|t| gb > t) {
                let limit = total_gb.map(|t| format!(" (this machine has {t:.1} GB)")).unwrap_or_default();
                return Err(CommandError::invalid(
                    "memory_budget_gb",
                    format!("must be above 0 and at most RAM{limit}"),
                ));
            }
        }
        if let Some(ttl) = self.idle_ttl_seconds {
            if !(10..=604_800).contains(&ttl) {
                return Err(CommandError::invalid("idle_ttl_seconds", "must be between 10 seconds and 7 days"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.preload.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(CommandError::invalid("preload", format!("`{dup}` is listed twice")));
        }
        if let Some(model) = self.drafts.iter().find_map(|(model, draft)| (model == draft).then_some(model)) {
            return Err(CommandError::invalid("drafts", format!("`{model}` cannot be its own draft")));
        }
        Ok(())
    }

    /// The engine's pool configuration for these settings.
    pub fn to_pool_config(&self) -> mlx_manager_engine::PoolConfig {
        let defaults = mlx_manager_engine::PoolConfig::default();
        mlx_manager_engine::PoolConfig {
            max_loaded_models: self.max_loaded_models.max(1) as usize,
            memory_budget_bytes: self.memory_budget_gb.map(|gb| (gb * 1e9) as u64).or(defaults.memory_budget_bytes),
            idle_ttl: self.idle_ttl_seconds.map(|s| std::time::Duration::from_secs(u64::from(s))),
            ..defaults
        }
    }
}
