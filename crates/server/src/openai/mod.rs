//! The OpenAI-compatible routes served locally that are not chat: completions, embeddings, and
//! the model list.

pub mod completions;
pub mod embeddings;
pub mod models;
