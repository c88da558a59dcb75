//! Domain types shared by every other crate of MLX Manager.
//!
//! Why a crate of its own: the server, the audit store, the CLI and the desktop shell all speak
//! about the same things (an audit entry, a backend, request timeouts, providers and routing rules) and must agree on their
//! shape without depending on each other's machinery (no tokio, axum, rusqlite or MLX here).
#![deny(missing_docs)]

mod audit;
mod routing;
mod settings;

pub use audit::{
    AuditBucket, AuditEntry, AuditFilter, AuditPage, AuditSink, AuditStats, AuditStatus, BackendType, NullAuditSink,
};
pub use routing::{
    KeyStorage, MatchType, ProviderConfig, ProviderInput, ProviderKind, ProviderTestResult, ProviderView, RouteTest,
    RoutingRule, RuleInput, LOCAL_BACKEND,
};
pub use settings::{EndpointKind, Timeouts, TIMEOUT_SECONDS_RANGE};
