//! Domain types shared by every other crate of MLX Manager.
//!
//! Why a crate of its own: the server, the audit store, the CLI and the desktop shell all speak
//! about the same things (an audit entry, a backend, request timeouts, providers and routing rules) and must agree on their
//! shape without depending on each other's machinery (no tokio, axum, rusqlite or MLX here). Where a
//! lower crate needs persistence it names a trait from here ([`RoutingStore`]) that the store crate
//! implements; keys are [`SecretString`]s everywhere (see [`secret`]).
#![deny(missing_docs)]

mod audit;
mod persist;
mod routing;
pub mod secret;
mod settings;

pub use audit::{
    AuditBucket, AuditEntry, AuditFilter, AuditPage, AuditSink, AuditStats, AuditStatus, BackendType, NullAuditSink,
};
pub use persist::{PersistError, PersistFuture, RoutingConfig, RoutingStore};
pub use routing::{
    KeyStorage, MatchType, ProviderConfig, ProviderInput, ProviderKind, ProviderTestResult, ProviderView, RouteTest,
    RoutingRule, RuleInput, LOCAL_BACKEND,
};
pub use secret::{ExposeSecret, SecretString};
pub use settings::{EndpointKind, Timeouts, TIMEOUT_SECONDS_RANGE};
