//! Speculative decoding, as mlx-lm's `speculative_generate_step` does it: a small draft model with
//! the same vocabulary proposes a few tokens, the model reads its last token and the proposals in
//! one pass, and every proposal up to the first one it would not have chosen itself is kept,
//! followed by its own next token. Every emitted token is the model's own choice (its sampler,
//! on its logits, after the tokens before it), so greedy output is the output without a draft and
//! sampled output follows the model's distribution; what the draft buys is fewer passes of the
//! large model when it guesses well. A speculative sequence steps alone (not in a decode batch):
//! its rounds emit a varying number of tokens and both caches go back after a miss. The draft's
//! sliding windows are not mlx-lm's ring but keep a few positions more in temporal order
//! ([`Model::new_draft_cache`]): a ring that has wrapped cannot go back over a rejected proposal,
//! and the draft would re-read the whole sequence after every miss.

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{ops, Array};
use serde::{Deserialize, Serialize};

use super::{read_token, Phase, Sequence, Step, Taken, PREFILL_CHUNK};
use crate::cache::KvCache;
use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// A request's draft model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// A loaded model with the same vocabulary.
    pub model: String,
    /// Tokens it proposes per round (mlx-lm's `num_draft_tokens`).
    pub tokens: usize,
}

/// Most tokens a draft may propose per round.
pub const MAX_DRAFT_TOKENS: usize = 16;

/// A draft model's state for one sequence.
pub(crate) struct DraftState {
    model: String,
    cache: KvCache,
    /// Tokens (prompt and generated) its cache holds.
    fed: usize,
    tokens: usize,
    proposed: usize,
    accepted: usize,
    /// Rounds after which its cache could not go back to what it had read of the accepted
    /// tokens and was cleared (it then re-reads the whole sequence): 0 for every model whose
    /// draft cache can rewind a round, which the tests check.
    restarts: usize,
}

impl DraftState {
    /// Tokens proposed, tokens accepted.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.proposed, self.accepted)
    }
}

impl Sequence {
    /// Decodes this sequence with `draft` (the model `spec.model`) proposing tokens; checked here:
    /// both caches can go back, the vocabularies match, and no grammar (whose masks follow each
    /// accepted token) applies.
    pub(crate) fn with_draft(&mut self, model: &Model, spec: &Draft, draft: &Model) -> Result<()> {
        let refuse = |message: String| Err(EngineError::InvalidRequest { field: "draft_model", message });
        if !(1..=MAX_DRAFT_TOKENS).contains(&spec.tokens) {
            return refuse(format!("num_draft_tokens must be 1 to {MAX_DRAFT_TOKENS}"));
        }
        if !model.can_rewind() || !draft.can_rewind() {
            return refuse("speculative decoding needs models without recurrent layers".into());
        }
        if model.config.vocab_size != draft.config.vocab_size {
            return refuse(format!(
                "the draft `{}` has a vocabulary of {}, the model {}",
                spec.model, draft.config.vocab_size, model.config.vocab_size
            ));
        }
        if self.constraint.is_some() || self.params.grammar.is_some() {
            return refuse("speculative decoding does not combine with structured output".into());
        }
        self.draft = Some(DraftState {
            model: spec.model.clone(),
            // A round goes back over at most its proposals.
            cache: draft.new_draft_cache(spec.tokens + 1),
            fed: 0,
            tokens: spec.tokens,
            proposed: 0,
            accepted: 0,
            restarts: 0,
        });
        Ok(())
    }

    /// The draft model this sequence decodes with, if any.
    pub(crate) fn draft_model(&self) -> Option<&str> {
        self.draft.as_ref().map(|d| d.model.as_str())
    }

    /// Whether it decodes with a draft (past its prompt): it steps alone, with [`Sequence::speculate`].
    pub(crate) fn speculative(&self) -> bool {
        self.draft.is_some() && self.decoding()
    }

    /// Room a step needs in the reader's buffer: every token a round (or a token and those its
    /// grammar forces) can emit, and the final event.
    pub(crate) fn room(&self) -> usize {
        match (&self.draft, &self.constraint) {
            (Some(d), _) => d.tokens + 2,
            (None, Some(_)) => crate::constraint::MAX_FORCED + 2,
            (None, None) => 2,
        }
    }

    /// One speculative round: up to `tokens` proposals and one token of the model's own.
    pub(crate) fn speculate(
        &mut self,
        model: &Model,
        draft: &Model,
        tokenizer: &Tokenizer,
        eos: &std::collections::BTreeSet<u32>,
    ) -> Result<Step> {
        let mut events = Vec::new();
        let last = match std::mem::replace(&mut self.phase, Phase::Finished) {
            // The first token, computed after the prompt: read and sent like any other.
            Phase::Decode { pending } => {
                let (id, logprob) = read_token(pending)?;
                match self.take(tokenizer, eos, id, logprob, !self.goes_on())? {
                    Taken::Token(event) => events.push(event),
                    Taken::End(step) => return Ok(step),
                }
                id
            }
            Phase::Speculate { last } => last,
            other => {
                self.phase = other;
                return Ok(Step::Continue);
            }
        };
        let read: Vec<u32> = self.prompt.iter().chain(&self.history).copied().collect();
        let d = self.draft.as_mut().expect("a speculative sequence has a draft");
        let remaining = self.params.max_tokens - self.generated;
        let k = d.tokens.min(remaining.saturating_sub(1));
        let proposals = propose(draft, d, &read, k)?;
        // The model reads its last token and the proposals: the logits after each.
        let input: Vec<u32> = std::iter::once(last).chain(proposals.iter().copied()).collect();
        let logits = model.logits_all(&Array::from_slice(&input, &[input.len() as i32]), &mut self.cache)?;
        let mut n = 0;
        let own = loop {
            let row = n as i32;
            let (id, logprob) = read_token(self.sample(logits.try_index((row..row + 1, ..))?)?)?;
            let last = self.generated + 1 >= self.params.max_tokens;
            match self.take(tokenizer, eos, id, logprob, last)? {
                Taken::Token(event) => events.push(event),
                Taken::End(step) => {
                    self.count(k, n);
                    return Ok(match step {
                        Step::Finished(mut end) => {
                            events.append(&mut end);
                            Step::Finished(events)
                        }
                        other => other,
                    });
                }
            }
            if n == k || proposals[n] != id {
                break id;
            }
            n += 1;
        };
        self.count(k, n);
        // Keep what the model read up to its last accepted proposal, and what the draft read of
        // the accepted ones (it never read its last proposal).
        let kept = read.len() + n;
        if self.cache.trim(kept as i32) as usize != kept {
            return Err(EngineError::Mlx {
                message: "the model's cache could not go back to its accepted tokens".into(),
            });
        }
        let d = self.draft.as_mut().expect("draft");
        let keep = d.fed.min(kept);
        d.fed = d.cache.trim(keep as i32) as usize;
        if d.fed < keep {
            d.restarts += 1;
        }
        self.phase = Phase::Speculate { last: own };
        Ok(Step::Tokens(events))
    }

    fn count(&mut self, proposed: usize, accepted: usize) {
        if let Some(d) = self.draft.as_mut() {
            d.proposed += proposed;
            d.accepted += accepted;
        }
    }
}

/// `k` tokens the draft proposes after `read` (greedy), catching up first on what it has not read.
fn propose(draft: &Model, d: &mut DraftState, read: &[u32], k: usize) -> Result<Vec<u32>> {
    let mut proposals = Vec::with_capacity(k);
    if k == 0 {
        return Ok(proposals);
    }
    let mut unread = &read[d.fed..];
    while unread.len() > PREFILL_CHUNK {
        let (chunk, rest) = unread.split_at(PREFILL_CHUNK);
        draft.hidden(&Array::from_slice(chunk, &[chunk.len() as i32]), &mut d.cache)?;
        mlx_rs::transforms::eval(d.cache.layers.iter().flat_map(|l| l.state()))?;
        unread = rest;
    }
    let mut logits = draft.logits(&Array::from_slice(unread, &[unread.len() as i32]), &mut d.cache)?;
    d.fed = read.len();
    loop {
        let (id, _) = read_token((ops::indexing::argmax_axis(&logits, -1, false)?, None))?;
        proposals.push(id);
        if proposals.len() == k {
            return Ok(proposals);
        }
        logits = draft.logits(&Array::from_slice(&[id], &[1]), &mut d.cache)?;
        d.fed += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::config::ModelConfig;
    use crate::generate::{GenerationEvent, GenerationParams};
    use crate::tiny::{write_family_model_with, TinyDtype, TinyFamily, TinySpec};

    /// A tiny Gemma 3 of four layers, every other one a window of 8.
    fn gemma3(dir: &Path, dtype: TinyDtype) -> (Model, Tokenizer) {
        let spec = TinySpec { layers: 4, dtype, ..TinySpec::new(TinyFamily::Llama) };
        let window = json!({"sliding_window": 8, "sliding_window_pattern": 2});
        write_family_model_with(dir, "gemma3_text", &spec, &window).unwrap();
        let config = ModelConfig::load(dir).unwrap();
        let tokenizer = Tokenizer::load(dir, &config.eos_token_ids).unwrap();
        (Model::load(dir, config).unwrap(), tokenizer)
    }

    fn ids(events: Vec<GenerationEvent>) -> impl Iterator<Item = u32> {
        events.into_iter().filter_map(|e| match e {
            GenerationEvent::Token { id, .. } => Some(id),
            _ => None,
        })
    }

    /// Greedy tokens after `prompt` (no end-of-sequence id stops them), decoded plainly or
    /// speculatively with `draft` proposing 3 per round; with it, its state at the end.
    fn decode(model: &Model, tok: &Tokenizer, draft: Option<&Model>, prompt: &[u32]) -> (Vec<u32>, Option<DraftState>) {
        let params = GenerationParams { max_tokens: 150, ..GenerationParams::default() };
        let mut seq = Sequence::new(model, tok, prompt.to_vec(), params, None).unwrap();
        if let Some(draft) = draft {
            seq.with_draft(model, &Draft { model: "draft".into(), tokens: 3 }, draft).unwrap();
        }
        while !seq.decoding() {
            seq.prefill_step(model, PREFILL_CHUNK).unwrap();
        }
        let (eos, mut out) = (BTreeSet::new(), Vec::new());
        loop {
            let step = match draft {
                Some(draft) => seq.speculate(model, draft, tok, &eos).unwrap(),
                None => Sequence::decode_together(model, tok, &eos, &mut [&mut seq]).unwrap().pop().unwrap().unwrap(),
            };
            match step {
                Step::Continue => {}
                Step::Token(event) => out.extend(ids(vec![event])),
                Step::Tokens(events) => out.extend(ids(events)),
                Step::Finished(events) => {
                    out.extend(ids(events));
                    return (out, seq.draft.take());
                }
            }
        }
    }

    /// A draft with sliding-window layers (the model's first two layers of four), decoding far
    /// past its window of 8: after a rejected proposal its cache goes back over it, never
    /// cleared to re-read the sequence (mlx-lm's ring, once wrapped, could not), and the tokens
    /// are the model's own.
    #[test]
    fn a_sliding_window_draft_goes_back_over_rejected_proposals() {
        let (dir, draft_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (model, tok) = gemma3(dir.path(), TinyDtype::F32);
        let (draft, _) = gemma3(draft_dir.path(), TinyDtype::Bf16);
        let prompt: Vec<u32> = (0..20u32).map(|i| (i * 37 + 3) % 400 + 5).collect();
        let (plain, _) = decode(&model, &tok, None, &prompt);
        let (speculative, state) = decode(&model, &tok, Some(&draft), &prompt);
        assert_eq!(speculative, plain);
        assert_eq!(plain.len(), 150);
        let state = state.expect("a draft");
        let (proposed, accepted) = state.counts();
        assert!(accepted > 0 && accepted < proposed, "{accepted} of {proposed} accepted: no misses to go back over");
        assert_eq!(state.restarts, 0, "the draft's cache was cleared and the sequence re-read");
    }
}
