//! The engine's one error type.

use std::path::PathBuf;

/// Everything that can go wrong inside the engine, typed so callers (HTTP server, desktop shell)
/// can map each case to a status without parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No model with this id is registered or loaded.
    #[error("model `{model}` not found")]
    ModelNotFound {
        /// The id the caller asked for.
        model: String,
    },
    /// A file of the model folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// config.json (or another JSON config) is malformed or inconsistent.
    #[error("invalid config {}: {message}", path.display())]
    InvalidConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The `model_type` is not one of the families this engine implements.
    #[error("unsupported architecture `{model_type}` in {}", path.display())]
    UnsupportedArchitecture {
        /// The `model_type` from config.json.
        model_type: String,
        /// The config file.
        path: PathBuf,
    },
    /// A tensor the architecture needs is absent from every safetensors file.
    #[error("tensor `{tensor}` is missing from the weights in {}", path.display())]
    MissingTensor {
        /// The model folder.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor has the wrong shape or dtype for the config.
    #[error("tensor `{tensor}` in {} has shape {actual:?}, expected {expected:?}", path.display())]
    TensorShape {
        /// The safetensors file holding it.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<i32>,
        /// The shape found.
        actual: Vec<i32>,
    },
    /// A tensor the architecture does not use (usually a checkpoint of another family).
    #[error("unexpected tensor `{tensor}` in {}", path.display())]
    UnexpectedTensor {
        /// The safetensors file holding it.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// A safetensors file is truncated, corrupt or of an unsupported dtype.
    #[error("corrupt weights file {}: {message}", path.display())]
    CorruptWeights {
        /// The safetensors file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// tokenizer.json is missing or cannot be used.
    #[error("tokenizer error ({}): {message}", path.display())]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The chat template failed to parse or render (including `raise_exception`).
    #[error("chat template error: {message}")]
    ChatTemplate {
        /// The template engine's message.
        message: String,
    },
    /// The request itself is invalid (bad sampling parameter, empty prompt, …).
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// The request field at fault (`temperature`, `prompt`, …; empty when none is).
        field: &'static str,
        /// Which parameter and why.
        message: String,
    },
    /// A grammar llguidance cannot compile, or a constraint that failed while decoding.
    #[error("grammar: {message}")]
    Grammar {
        /// llguidance's reason.
        message: String,
    },
    /// The prompt (plus max_tokens) does not fit the model's context window.
    #[error("prompt has {prompt_tokens} tokens, the model's context is {context_length}")]
    ContextLength {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// The model's maximum.
        context_length: usize,
    },
    /// The prompt's text is so long that it cannot fit the model's context whatever it tokenizes
    /// to (refused without tokenizing it).
    #[error("the prompt is {bytes} bytes, at least {min_tokens} tokens; the model's context is {context_length}")]
    PromptTooLarge {
        /// Bytes of prompt text (the chat template rendered).
        bytes: usize,
        /// The fewest tokens that text can be.
        min_tokens: usize,
        /// The model's maximum.
        context_length: usize,
    },
    /// Loading the model would exceed the memory budget even after evicting every idle,
    /// unpinned model.
    #[error("not enough memory for model `{model}`: it needs {needed_bytes} bytes, {available_bytes} are available within the budget")]
    InsufficientMemory {
        /// The model to load.
        model: String,
        /// Bytes its weights need.
        needed_bytes: u64,
        /// Bytes the budget leaves once pinned and busy models are counted.
        available_bytes: u64,
    },
    /// MLX reported an error while computing.
    #[error("MLX error: {message}")]
    Mlx {
        /// MLX's message.
        message: String,
    },
    /// The model was unloaded with `force` while this request was running on it.
    #[error("model `{model}` was unloaded while the request ran")]
    Unloaded {
        /// The model.
        model: String,
    },
    /// The engine thread has stopped (shutdown or a fatal error).
    #[error("the engine has stopped")]
    Stopped,
}

impl From<mlx_rs::error::Exception> for EngineError {
    fn from(e: mlx_rs::error::Exception) -> Self {
        EngineError::Mlx { message: e.to_string() }
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
