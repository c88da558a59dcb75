//! Request pieces shared by the OpenAI routes: sampling parameters, stop strings, validation.

use mlx_manager_engine::{GenerationParams, SamplingParams};
use serde::Deserialize;

use crate::error::{ApiError, FieldError};

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Up to four.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a last chunk with usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling fields common to chat and completions (flattened into both requests).
#[derive(Debug, Default, Deserialize)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub min_p: Option<f32>,
    pub seed: Option<u64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub stop: Option<Stop>,
    pub n: Option<u32>,
}

/// Most tokens one request may ask for when the model's context is unknown.
pub const MAX_TOKENS_CAP: u32 = 1_000_000;

impl Sampling {
    /// Validates and turns into engine parameters. `context` is the model's window if known.
    pub fn into_params(
        self,
        max_tokens: u32,
        logprobs: bool,
        context: Option<usize>,
    ) -> Result<GenerationParams, ApiError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                errors.push(FieldError { field: field.into(), message: message.into() });
            }
        };
        let t = self.temperature.unwrap_or(1.0);
        check(t.is_finite() && (0.0..=2.0).contains(&t), "temperature", "must be between 0 and 2");
        let top_p = self.top_p.unwrap_or(1.0);
        check(top_p.is_finite() && top_p > 0.0 && top_p <= 1.0, "top_p", "must be in (0, 1]");
        let min_p = self.min_p.unwrap_or(0.0);
        check(min_p.is_finite() && (0.0..=1.0).contains(&min_p), "min_p", "must be in [0, 1]");
        for (name, v) in [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)] {
            check(v.is_none_or(|v| v.is_finite() && (-2.0..=2.0).contains(&v)), name, "must be between -2 and 2");
        }
        check(
            self.repetition_penalty.is_none_or(|v| v.is_finite() && v > 0.0 && v <= 10.0),
            "repetition_penalty",
            "must be in (0, 10]",
        );
        check(self.n.is_none_or(|n| n == 1), "n", "only n=1 is supported");
        check(max_tokens >= 1, "max_tokens", "must be at least 1");
        let cap = context.map_or(MAX_TOKENS_CAP, |c| c as u32);
        check(max_tokens <= cap, "max_tokens", &format!("must be at most {cap} (the model's context)"));
        let stop = match self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        check(stop.len() <= 4, "stop", "at most 4 stop sequences");
        check(stop.iter().all(|s| !s.is_empty()), "stop", "stop sequences must not be empty");
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(GenerationParams {
            max_tokens: max_tokens as usize,
            sampling: SamplingParams {
                temperature: t,
                top_p,
                top_k: self.top_k.unwrap_or(0),
                min_p,
                seed: self.seed,
                repetition_penalty: self.repetition_penalty,
                presence_penalty: self.presence_penalty,
                frequency_penalty: self.frequency_penalty,
                ..SamplingParams::default()
            },
            stop,
            stop_token_ids: Vec::new(),
            logprobs,
        })
    }
}

/// Seconds since the epoch, for `created`.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `finish_reason` as OpenAI spells it.
pub fn finish_reason(r: mlx_manager_engine::FinishReason) -> &'static str {
    match r {
        mlx_manager_engine::FinishReason::Stop => "stop",
        mlx_manager_engine::FinishReason::Length => "length",
    }
}
