//! MLX Manager's inference core, on mlx-rs.
//!
//! Why a crate of its own: everything that touches MLX lives here, behind one thread (Metal
//! crashes when work is dispatched from several), so the HTTP server, the CLI and the desktop shell
//! only ever hold an [`EngineHandle`] and never link model code into their own logic. It loads the
//! same model folders mlx-lm and LM Studio load (Hugging Face / mlx-community layout: config.json,
//! safetensors shards, tokenizer.json, tokenizer_config.json), runs the Llama/Mistral/Qwen2/Qwen3
//! families in fp32/fp16/bf16 or 4/8-bit, and generates the same tokens as mlx-lm; a generation
//! may be constrained to a grammar (llguidance).
#![deny(missing_docs)]

mod actor;
mod alloc;
mod cache;
pub mod chat;
pub mod config;
mod constraint;
pub mod cpu_kernels;
mod error;
mod generate;
mod loaded;
mod model;
pub mod output;
pub mod pool;
mod progress;
mod sampler;
pub mod tiny;
pub mod tokenizer;

pub use actor::{
    EmbedInput, EmbedRequest, Embeddings, Engine, EngineHandle, EngineHealth, EngineStatus, GenerateRequest,
    GenerationStream, ModelInfo,
};
pub use chat::ChatMessage;
pub use constraint::{bounded_whitespace, Grammar, JSON_WHITESPACE};
pub use error::{EngineError, Result};
pub use generate::{Draft, FinishReason, GenerationEvent, GenerationParams, Prompt, Usage, MAX_DRAFT_TOKENS};
pub use model::{family_names, supported_model_types, Model};
pub use pool::{total_memory, KeepAlive, PoolConfig};
pub use progress::{LoadEvent, LoadState};
pub use sampler::SamplingParams;
