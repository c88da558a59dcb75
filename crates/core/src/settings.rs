//! Settings the server reads at request time.

use serde::{Deserialize, Serialize};

/// The endpoint families that have their own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// `/v1/chat/completions` and `/v1/messages`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
}

/// Per-endpoint request timeouts, covering queueing and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Timeouts {
    /// Chat requests, seconds (default 900).
    pub chat_seconds: u32,
    /// Text completions, seconds (default 600).
    pub completions_seconds: u32,
    /// Embeddings, seconds (default 120).
    pub embeddings_seconds: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { chat_seconds: 900, completions_seconds: 600, embeddings_seconds: 120 }
    }
}

/// Allowed timeout values in seconds (1 s to 24 h), the same for every endpoint.
pub const TIMEOUT_SECONDS_RANGE: std::ops::RangeInclusive<u32> = 1..=86_400;

impl Timeouts {
    /// The first field outside [`TIMEOUT_SECONDS_RANGE`], by its serialized name.
    pub fn out_of_range(&self) -> Option<&'static str> {
        [
            ("chat_seconds", self.chat_seconds),
            ("completions_seconds", self.completions_seconds),
            ("embeddings_seconds", self.embeddings_seconds),
        ]
        .into_iter()
        .find(|(_, v)| !TIMEOUT_SECONDS_RANGE.contains(v))
        .map(|(field, _)| field)
    }

    /// The timeout of one endpoint family, in seconds.
    pub fn seconds(&self, kind: EndpointKind) -> u32 {
        match kind {
            EndpointKind::Chat => self.chat_seconds,
            EndpointKind::Completions => self.completions_seconds,
            EndpointKind::Embeddings => self.embeddings_seconds,
        }
    }
}
