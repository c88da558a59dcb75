//! Cloud and remote backends for MLX Manager: providers (OpenAI, Anthropic, and any server
//! speaking either API), the routing rules that send model names to them, and the translation
//! between the two APIs (bodies, answers, streams, usage, finish/stop reasons).
//!
//! Why a crate of its own: every app keeps one local endpoint while some models are served
//! elsewhere; the server crate only asks a [`Catalog`] where a model goes and hands it the request.
//! Nothing here touches MLX or SQLite directly (settings go through the store crate), and provider
//! keys live in the OS keychain or an encrypted file ([`Secrets`]), never in the database, a log or
//! an error.
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
pub use translate::{chat_to_messages, messages_to_chat};
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

/// A provider's answer in the client's API format.
pub enum Reply {
    /// A whole answer.
    Json {
        /// The body.
        body: serde_json::Value,
        /// Its token counts.
        usage: Usage,
    },
    /// Server-sent events.
    Stream(ReplyStream),
}
