//! Engine generation parameters from a request's sampling fields (their ranges were checked by
//! the API layer, the token limit against the model's context by `check::fits`).

use mlx_manager_api::openai::{ChatRequest, CompletionRequest};
use mlx_manager_engine::{GenerationParams, SamplingParams};

/// The sampling fields the OpenAI routes (and converted Anthropic requests) share.
#[derive(Debug, Default)]
pub(crate) struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub min_p: Option<f64>,
    pub seed: Option<u64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub stop: Vec<String>,
}

impl From<&ChatRequest> for Sampling {
    fn from(r: &ChatRequest) -> Sampling {
        Sampling {
            temperature: r.temperature,
            top_p: r.top_p,
            top_k: r.top_k,
            min_p: r.min_p,
            seed: r.seed,
            presence_penalty: r.presence_penalty,
            frequency_penalty: r.frequency_penalty,
            repetition_penalty: r.repetition_penalty,
            stop: r.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        }
    }
}

impl From<&CompletionRequest> for Sampling {
    fn from(r: &CompletionRequest) -> Sampling {
        Sampling {
            temperature: r.temperature,
            top_p: r.top_p,
            top_k: r.top_k,
            min_p: r.min_p,
            seed: r.seed,
            presence_penalty: r.presence_penalty,
            frequency_penalty: r.frequency_penalty,
            repetition_penalty: r.repetition_penalty,
            stop: r.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        }
    }
}

impl Sampling {
    /// The engine's parameters for `max_tokens` new tokens.
    pub(crate) fn params(self, max_tokens: u32, logprobs: bool) -> GenerationParams {
        GenerationParams {
            max_tokens: max_tokens as usize,
            sampling: SamplingParams {
                temperature: self.temperature.unwrap_or(1.0) as f32,
                top_p: self.top_p.unwrap_or(1.0) as f32,
                top_k: self.top_k.unwrap_or(0),
                min_p: self.min_p.unwrap_or(0.0) as f32,
                seed: self.seed,
                repetition_penalty: self.repetition_penalty.map(|v| v as f32),
                presence_penalty: self.presence_penalty.map(|v| v as f32),
                frequency_penalty: self.frequency_penalty.map(|v| v as f32),
                ..SamplingParams::default()
            },
            stop: self.stop,
            stop_token_ids: Vec::new(),
            logprobs,
            grammar: None,
            grammar_trigger: None,
            draft: None,
        }
    }
}
