//! What callers send to and get back from the engine thread: model facts, embedding and
//! generation requests, status and health.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::generate::{GenerationParams, Prompt};

/// Facts about a loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The id requests use.
    pub id: String,
    /// The folder it was loaded from.
    pub path: PathBuf,
    /// `model_type` from config.json.
    pub model_type: String,
    /// Weight dtype (`float32`, `bfloat16`, …).
    pub dtype: String,
    /// `(bits, group_size)` when quantized (as the files store it, also when `dequantized`).
    pub quantization: Option<(i32, i32)>,
    /// Its quantized weights run from a dense copy made at load (CPU only, when the copy fits the
    /// memory budget without evicting anything; `PoolConfig::dense_on_cpu`). It says why a 4-bit
    /// model uses several times its file's size (`weight_bytes` is the copy's: ~6× the file for
    /// 4-bit weights with f32 scales) and why it is fast on the CPU: libmlx's CPU quantized
    /// products are 4× to 100s of times slower than the dense ones. Its numbers are then
    /// mlx-lm's on the dequantized model. False when not quantized, on the GPU, when the copy
    /// would not fit, and under `serve --keep-quantized`.
    pub dequantized: bool,
    /// Bytes of weights in memory (of the dense copy when `dequantized`).
    pub weight_bytes: usize,
    /// Bytes of key/value cache held by its running requests now.
    pub kv_cache_bytes: usize,
    /// Context window, when known.
    pub context_length: Option<usize>,
    /// Never evicted (loaded explicitly) until unloaded.
    pub pinned: bool,
    /// Generations and embedding requests served.
    pub requests_served: u64,
    /// Seconds since it last served a request (or was loaded).
    pub idle_seconds: u64,
    /// How its output marks up tool calls and reasoning (from its chat template).
    #[serde(skip)]
    pub output: crate::output::OutputFormat,
}

/// A request for embeddings.
#[derive(Debug, Clone)]
pub struct EmbedRequest {
    /// Model id (loaded).
    pub model: String,
    /// Texts (tokenized without special tokens) or token ids, one vector each.
    pub inputs: Vec<EmbedInput>,
    /// Cut inputs longer than the context instead of failing.
    pub truncate: bool,
}

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    /// Text.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
}

/// Unit-length embeddings, one per input, and the tokens they consumed.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read over all inputs.
    pub prompt_tokens: usize,
}

/// A snapshot of the engine's work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// Generations in progress (prefilling or decoding).
    pub running: usize,
    /// Models loaded.
    pub loaded: Vec<ModelInfo>,
    /// Prompts prefilled in one pass together with at least one other, since the engine started.
    pub batched_prompts: u64,
    /// Tokens decoded in one pass together with other sequences' tokens, since the engine started.
    pub batched_tokens: u64,
    /// Batches of new prompts split across MLX's CPU streams to compute on several cores, since
    /// the engine started.
    pub split_batches: u64,
}

/// Is the engine usable?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHealth {
    /// Accepting commands.
    Ready,
    /// The thread has ended.
    Stopped,
}

/// A request to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Model id (registered or loaded).
    pub model: String,
    /// What to continue.
    pub prompt: Prompt,
    /// Limits and sampling.
    pub params: GenerationParams,
}
