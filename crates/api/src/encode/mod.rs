//! One encoder per API from [`crate::Event`]s to its stream, and from an [`crate::Answer`] to its
//! whole body; one decoder per API for the way back (a provider's answer as events).

mod anthropic;
mod completions;
mod decode;
mod openai;

pub use anthropic::{arguments_object, MessagesEncoder};
pub use completions::CompletionEncoder;
pub use decode::{AnthropicDecoder, OpenAiDecoder};
pub use openai::ChatEncoder;
