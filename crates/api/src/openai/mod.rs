//! The OpenAI API's bodies.

mod chat;
mod completions;

pub use chat::*;
pub use completions::*;
