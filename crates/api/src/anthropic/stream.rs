//! Anthropic stream events: a tagged enum whose tag is also the SSE event name.

use serde::{Deserialize, Serialize};

use super::{Block, MessageResponse, StopReason};
use crate::usage::AnthropicUsage;

/// What a `content_block_delta` adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// Text.
    TextDelta {
        /// The piece.
        text: String,
    },
    /// A piece of a tool call's input JSON.
    InputJsonDelta {
        /// The piece.
        partial_json: String,
    },
    /// Reasoning text.
    ThinkingDelta {
        /// The piece.
        thinking: String,
    },
    /// The reasoning block's signature.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
}

/// The top-level change `message_delta` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDelta {
    /// Why it ended.
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that ended it.
    pub stop_sequence: Option<String>,
}

/// An error event's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Anthropic's error type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

/// One stream event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message, empty.
    MessageStart {
        /// The message so far.
        message: MessageResponse,
    },
    /// A block begins.
    ContentBlockStart {
        /// Its index.
        index: u32,
        /// The block, empty.
        content_block: Block,
    },
    /// Keep-alive.
    Ping,
    /// A block grows.
    ContentBlockDelta {
        /// Its index.
        index: u32,
        /// The piece.
        delta: BlockDelta,
    },
    /// A block ends.
    ContentBlockStop {
        /// Its index.
        index: u32,
    },
    /// The stop reason and final counts.
    MessageDelta {
        /// The change.
        delta: MessageDelta,
        /// The counts.
        usage: AnthropicUsage,
    },
    /// The end.
    MessageStop,
    /// A failure mid-stream.
    Error {
        /// What failed.
        error: ErrorBody,
    },
}

impl StreamEvent {
    /// The SSE event name (the same as the `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::Ping => "ping",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}
