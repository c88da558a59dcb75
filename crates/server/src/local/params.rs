//! Engine generation parameters from a request's sampling fields (their ranges were checked by
//! the API layer; what is left is the model's own limit: its context).

use mlx_manager_engine::{GenerationParams, SamplingParams};

use crate::error::ApiError;
use crate::extract::invalid;

/// Most tokens one request may ask for when the model's context is unknown.
const MAX_TOKENS_CAP: u32 = 1_000_000;

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

impl Sampling {
    /// Parameters for a model with `context` tokens; `max_tokens` is checked against it under
    /// the name the client used (`field`).
    pub(crate) fn params(
        self,
        max_tokens: u32,
        field: &str,
        logprobs: bool,
        context: Option<usize>,
    ) -> Result<GenerationParams, ApiError> {
        let cap = context.map_or(MAX_TOKENS_CAP, |c| c as u32);
        if max_tokens > cap {
            return Err(invalid(field, format!("must be at most {cap} (the model's context)")));
        }
        Ok(GenerationParams {
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
        })
    }
}
