//! What a generation is asked for and what it sends back: the prompt, the parameters, the events
//! of its stream, why it ended, and its counts and timings.

use serde::{Deserialize, Serialize};

use super::Draft;
use crate::chat::{ChatMessage, TemplateKwargs};
use crate::sampler::SamplingParams;

/// What to generate from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Prompt {
    /// Raw text, tokenized with the tokenizer's special tokens (BOS) added.
    Text(String),
    /// Token ids, used as given.
    Tokens(Vec<u32>),
    /// A conversation, rendered with the model's chat template (generation prompt added).
    Chat {
        /// The messages.
        messages: Vec<ChatMessage>,
        /// Tool definitions passed to the template, if any.
        tools: Option<serde_json::Value>,
        /// Extra template variables, a request's `chat_template_kwargs` (`enable_thinking`,
        /// `reasoning_effort`, ...); empty for none. See [`crate::chat::render_with_kwargs`].
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        template_kwargs: TemplateKwargs,
    },
}

/// Everything about one request except the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    /// Upper bound on generated tokens.
    pub max_tokens: usize,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Stop strings: generation ends before the first one, which is not returned.
    pub stop: Vec<String>,
    /// Extra token ids that end generation (besides the model's EOS ids).
    pub stop_token_ids: Vec<u32>,
    /// Report the log-probability of each chosen token.
    pub logprobs: bool,
    /// What the output must match (constrained decoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<crate::constraint::Grammar>,
    /// When set, the grammar applies only once this text has been written (and again after each
    /// time it completes): a tool call's arguments under `tool_choice: auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar_trigger: Option<String>,
    /// Speculative decoding: a loaded draft model proposes tokens that this model verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<Draft>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            logprobs: false,
            grammar: None,
            grammar_trigger: None,
            draft: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An EOS/stop token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// Counts and timings of a finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (the stop token not counted).
    pub completion_tokens: usize,
    /// Seconds from start to the first generated token (prefill).
    pub prompt_seconds: f64,
    /// Seconds spent decoding after the first token.
    pub generation_seconds: f64,
    /// Prompt tokens whose keys and values came from the model's prompt cache (not recomputed).
    #[serde(default)]
    pub cached_tokens: usize,
    /// With a draft model: tokens it proposed, and how many of them this model accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_tokens: Option<(usize, usize)>,
}

impl Usage {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_seconds.max(1e-9)
    }
    /// Generated tokens per second, after the first.
    pub fn generation_tps(&self) -> f64 {
        self.completion_tokens.saturating_sub(1) as f64 / self.generation_seconds.max(1e-9)
    }
}

/// What a generation stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// The request was accepted and its prompt tokenized (always the first event).
    Started {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// The rendered chat prompt leaves the model inside its reasoning block (the template
        /// opened it), so the output starts with reasoning.
        reasoning_open: bool,
    },
    /// One generated token and the text it completed (may be empty while a multi-byte
    /// character or a possible stop string is incomplete).
    Token {
        /// The token id.
        id: u32,
        /// Newly released text.
        text: String,
        /// Log-probability of the token, when asked for.
        logprob: Option<f32>,
    },
    /// The end: any text still held back, why it ended, and usage.
    Done {
        /// Text released at the end.
        text: String,
        /// Why it ended.
        finish_reason: FinishReason,
        /// The stop string that ended it, if one did.
        stop_sequence: Option<String>,
        /// Counts and timings.
        usage: Usage,
    },
}
