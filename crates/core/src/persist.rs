//! What the providers crate needs from storage, as a trait: the saved providers and routing
//! rules, loaded once and replaced on every edit.
//!
//! Why a trait here: the providers crate must persist its settings but has no business with
//! SQLite. It asks for an `Arc<dyn RoutingStore>`; the store crate implements it for its
//! database, and a test can implement it over memory.

use std::future::Future;
use std::pin::Pin;

use crate::{ProviderConfig, RoutingRule};

/// The saved providers and routing rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Every provider's settings (their keys live in the key storage, never here).
    pub providers: Vec<ProviderConfig>,
    /// Every rule, in matching order.
    pub rules: Vec<RoutingRule>,
}

/// Why loading or saving failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// What was saved no longer parses (written by another version, or edited by hand).
    #[error("the saved {what} cannot be read: {message}")]
    Unreadable {
        /// Which setting.
        what: String,
        /// The parser's explanation.
        message: String,
    },
    /// The storage itself failed (I/O, the database, a stopped writer); the storage's own error
    /// is the source, and its message is this error's.
    #[error(transparent)]
    Storage(Box<dyn std::error::Error + Send + Sync>),
}

/// A future a [`RoutingStore`] answers with.
pub type PersistFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PersistError>> + Send + 'a>>;

/// Durable storage for the routing configuration.
pub trait RoutingStore: Send + Sync {
    /// The saved configuration (empty when nothing was ever saved).
    fn load_routing(&self) -> PersistFuture<'_, RoutingConfig>;

    /// Replaces the saved configuration, providers and rules together; returns after the commit.
    fn save_routing(&self, config: RoutingConfig) -> PersistFuture<'_, ()>;
}
