//! The OpenAI-compatible routes.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod models;
pub mod params;
