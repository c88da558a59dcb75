//! Turning logits into the next token the way mlx-lm does: logits processors (repetition,
//! presence, frequency penalties), then log-softmax, then greedy argmax or top-p / min-p / top-k
//! filtering and a categorical draw at the temperature, from a seeded MLX random state.

use mlx_rs::random::RandomState;
use mlx_rs::{ops, Array};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// How to pick tokens. The defaults are greedy decoding with no penalties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 is greedy; otherwise logits are divided by it.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 disables it.
    pub top_k: u32,
    /// Drop tokens less likely than `min_p` × the top token's probability; 0 disables it.
    pub min_p: f32,
    /// Seed for reproducible sampling; without one, each request draws a fresh seed.
    pub seed: Option<u64>,
    /// Multiplicative (sign-aware) penalty on recently seen tokens; 1 or None disables it.
    pub repetition_penalty: Option<f32>,
    /// Additive penalty on tokens present in the recent context (OpenAI `presence_penalty`).
    pub presence_penalty: Option<f32>,
    /// Additive penalty per occurrence in the recent context (OpenAI `frequency_penalty`).
    pub frequency_penalty: Option<f32>,
    /// How many recent tokens the penalties look at.
    pub penalty_context_size: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            repetition_penalty: None,
            presence_penalty: None,
            frequency_penalty: None,
            penalty_context_size: 20,
        }
    }
}

impl SamplingParams {
    /// Rejects values that would make sampling meaningless, naming the parameter.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let bad = |field: &'static str, message: String| Err(EngineError::InvalidRequest { field, message });
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad("temperature", format!("temperature must be a number >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.top_k as usize >= vocab_size && self.top_k != 0 {
            return bad("top_k", format!("top_k must be below the vocabulary size ({vocab_size}), got {}", self.top_k));
        }
        if let Some(p) = self.repetition_penalty {
            if !(p.is_finite() && p > 0.0) {
                return bad("repetition_penalty", format!("repetition_penalty must be > 0, got {p}"));
            }
        }
        for (name, v) in [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)] {
            if let Some(v) = v {
                if !(-2.0..=2.0).contains(&v) {
                    return bad(name, format!("{name} must be in [-2, 2], got {v}"));
                }
            }
        }
        Ok(())
    }

    fn penalties(&self) -> bool {
        self.repetition_penalty.is_some_and(|p| p != 1.0)
            || self.presence_penalty.is_some_and(|p| p != 0.0)
            || self.frequency_penalty.is_some_and(|p| p != 0.0)
    }
}

/// Per-sequence sampling state.
pub(crate) struct Sampler {
    params: SamplingParams,
    random: RandomState,
    /// Recent tokens (lazy MLX array) for the penalties, when any is on.
    history: Option<Array>,
}

const NEG_INF: f32 = f32::NEG_INFINITY;

impl Sampler {
    pub(crate) fn new(params: SamplingParams) -> Result<Sampler> {
        let random = match params.seed {
            Some(seed) => RandomState::with_seed(seed)?,
            None => RandomState::new()?,
        };
        Ok(Sampler { params, random, history: None })
    }

    /// Records tokens the penalties should see (prompt, then each sampled token).
    pub(crate) fn observe(&mut self, tokens: &Array) -> Result<()> {
        if !self.params.penalties() {
            return Ok(());
        }
        let all = match self.history.take() {
            Some(h) => ops::concatenate(&[h, tokens.clone()], 0)?,
            None => tokens.clone(),
        };
        let n = all.shape()[0];
        let keep = self.params.penalty_context_size as i32;
        self.history = Some(if n > keep { all.take_axis(ops::arange::<_, i32>(n - keep, n, 1)?, 0)? } else { all });
        Ok(())
    }

    fn apply_penalties(&self, logits: Array) -> Result<Array> {
        let Some(history) = &self.history else { return Ok(logits) };
        let idx = history.expand_dims(0)?;
        let mut logits = logits;
        if let Some(p) = self.params.repetition_penalty.filter(|p| *p != 1.0) {
            let selected = logits.take_along_axis(&idx, -1)?;
            let penalised = ops::select(
                selected.lt(Array::from_f32(0.0))?,
                selected.multiply(Array::from_f32(p))?,
                selected.divide(Array::from_f32(p))?,
            )?;
            logits = logits.put_along_axis(&idx, &penalised, -1)?;
        }
        let vocab = logits.shape()[1];
        if self.params.presence_penalty.is_some_and(|p| p != 0.0)
            || self.params.frequency_penalty.is_some_and(|p| p != 0.0)
        {
            // counts[v] = occurrences of v in the window.
            let one_hot = history.expand_dims(1)?.eq(ops::arange::<_, u32>(0, vocab as u32, 1)?.expand_dims(0)?)?;
            let counts = one_hot.as_dtype(logits.dtype())?.sum_axis(0, true)?;
            if let Some(p) = self.params.frequency_penalty.filter(|p| *p != 0.0) {
                logits = logits.subtract(counts.multiply(Array::from_f32(p))?)?;
            }
            if let Some(p) = self.params.presence_penalty.filter(|p| *p != 0.0) {
                let present = counts.gt(Array::from_f32(0.0))?.as_dtype(logits.dtype())?;
                logits = logits.subtract(present.multiply(Array::from_f32(p))?)?;
            }
        }
        Ok(logits)
    }

    /// Picks the next token from `[1, vocab]` logits; returns the token `[1]` and, when asked,
    /// its log-probability (both lazy).
    pub(crate) fn sample(&mut self, logits: Array, want_logprob: bool) -> Result<(Array, Option<Array>)> {
        let logits = self.apply_penalties(logits)?;
        let p = &self.params;
        if p.temperature == 0.0 && !want_logprob && logits.dtype() == mlx_rs::Dtype::Float32 {
            // In float32, normalising does not move the maximum: skip it on the hot path. In 16-bit
            // floats the subtraction can round two logits to a tie that mlx-lm's argmax (over the
            // normalised values) breaks differently, so there the normalisation stays.
            return Ok((ops::indexing::argmax_axis(&logits, -1, false)?, None));
        }
        let logprobs = logits.subtract(logits.logsumexp_axis(-1, true)?)?;
        let token = if p.temperature == 0.0 {
            ops::indexing::argmax_axis(&logprobs, -1, false)?
        } else {
            let mut lp = logprobs.clone();
            if p.top_p > 0.0 && p.top_p < 1.0 {
                lp = top_p(&lp, p.top_p)?;
            }
            if p.min_p > 0.0 {
                let top = lp.max_axis(-1, true)?;
                let floor = top.add(Array::from_f32(p.min_p.ln()))?;
                lp = ops::select(lp.lt(&floor)?, Array::from_f32(NEG_INF), &lp)?;
            }
            if p.top_k > 0 {
                let k = p.top_k as i32;
                let vocab = lp.shape()[1];
                let order = ops::argpartition_axis(lp.negative()?, k - 1, -1)?;
                let drop = order.take_axis(ops::arange::<_, i32>(k, vocab, 1)?, -1)?;
                let inf = ops::broadcast_to(Array::from_f32(NEG_INF).as_dtype(lp.dtype())?, drop.shape())?;
                lp = lp.put_along_axis(&drop, &inf, -1)?;
            }
            let key = self.random.next_key()?;
            mlx_rs::random::categorical(lp.multiply(Array::from_f32(1.0 / p.temperature))?, -1, None, &key)?
        };
        let logprob = if want_logprob { Some(logprobs.take_along_axis(&token.expand_dims(-1)?, -1)?) } else { None };
        Ok((token, logprob))
    }
}

/// Keeps the smallest set of tokens whose probability mass exceeds `top_p` (mlx-lm's method).
fn top_p(logprobs: &Array, top_p: f32) -> Result<Array> {
    let probs = logprobs.exp()?;
    let sorted = ops::argsort_axis(logprobs, -1)?;
    let sorted_probs = probs.take_along_axis(&sorted, -1)?;
    let cumulative = sorted_probs.cumsum(-1, None, None)?;
    let positions = ops::arange::<_, u32>(0, sorted.shape()[1] as u32, 1)?.expand_dims(0)?;
    let inverse = ops::zeros_like(&sorted)?.put_along_axis(&sorted, &positions, -1)?;
    let cumulative = cumulative.take_along_axis(&inverse, -1)?;
    Ok(ops::select(cumulative.gt(Array::from_f32(1.0 - top_p))?, logprobs, Array::from_f32(NEG_INF))?)
}
