//! Cloud and remote backends for MLX Manager: providers (OpenAI, Anthropic, and any server
//! speaking either API), the routing rules that send model names to them, and the translation
//! between the two APIs (bodies, answers, streams, usage, finish/stop reasons).
//!
//! Why a crate of its own: every app keeps one local endpoint while some models are served
//! elsewhere; the server crate only asks a [`Catalog`] where a model goes and hands it the request.
//! Nothing here touches MLX or SQLite: settings are saved through core's
//! [`mlx_manager_core::RoutingStore`] trait (the store crate implements it), so this crate does not
//! depend on the store. Provider keys live in the OS keychain or an encrypted file ([`Secrets`]),
//! never in the database, a log or an error, and in memory they are
//! [`mlx_manager_core::SecretString`]s, exposed only where a request header is built.
#![deny(missing_docs)]

mod catalog;
mod error;
mod rules;
mod secrets;
mod translate;
mod upstream;

use std::pin::Pin;

use futures_util::Stream;

pub use catalog::{Backend, Catalog, Route, Target, PROVIDER_KINDS};
pub use error::ProviderError;
pub use secrets::{SecretMode, Secrets};
pub use upstream::Provider;

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_tokens: u32,
    /// Generated (output) tokens.
    pub completion_tokens: u32,
}

/// One server-sent event for the client, already in its API's framing.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The event name (Anthropic streams), None for OpenAI's unnamed `data:` events.
    pub event: Option<String>,
    /// The data line.
    pub data: String,
}

/// What a stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// Send this to the client.
    Event(SseEvent),
    /// Token counts so far (for the audit log; not sent).
    Usage(Usage),
}

/// A streamed answer; an `Err` item ends it (send it as the stream's error event).
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<StreamItem, ProviderError>> + Send>>;

/// A chat or messages answer as it streams: API-neutral events (the server encodes them for its
/// client); an `Err` item ends it.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<mlx_manager_api::Event, ProviderError>> + Send>>;

/// A provider's chat or messages answer, API-neutral (the server encodes it for its client).
pub enum ChatReply {
    /// A whole answer.
    Answer(mlx_manager_api::Answer),
    /// A streamed answer.
    Events(EventStream),
}

/// A provider's completions or embeddings answer, passed through in OpenAI's format.
pub enum Reply {
    /// A whole completions or embeddings answer, in OpenAI's format.
    Json {
        /// The body.
        body: serde_json::Value,
        /// Its token counts.
        usage: Usage,
    },
    /// A streamed completions answer, OpenAI chunks.
    Stream(ReplyStream),
}
