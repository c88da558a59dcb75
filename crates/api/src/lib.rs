//! The wire types of the two APIs MLX Manager speaks: OpenAI (chat completions, completions,
//! embeddings) and Anthropic (messages), requests, responses and stream events, with tools, tool
//! calls, tool results, reasoning and usage — the conversions between the two, the validation
//! every request gets before it is routed, and one encoder per API from a backend's [`Event`]s.
//!
//! Why a crate of its own: the server parses requests and encodes answers with these types, and
//! the providers crate translates between the APIs with the same ones, so each shape, each
//! finish-reason mapping and each range check is written once. No I/O, no MLX, no axum.
#![deny(missing_docs)]

pub mod anthropic;
mod convert;
pub mod encode;
mod error;
mod event;
pub mod openai;
mod usage;
mod validate;

pub use convert::{chat_to_messages, for_openai, messages_to_chat, ChatDialect};
pub use error::{ApiTypeError, FieldError};
pub use event::{Answer, Call, Event, Finish};
pub use usage::{AnthropicUsage, OpenAiUsage, PromptTokensDetails, Usage};
pub use validate::{REASONING_EFFORTS, TOOL_NAME_MAX};
