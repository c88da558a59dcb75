//! One generation: prefill in chunks, then decode token by token with the next step already
//! scheduled (as mlx-lm pipelines it), streaming valid UTF-8 text, honouring stop tokens, stop
//! strings and max_tokens, and counting usage.

use std::time::{Duration, Instant};

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{ops, Array};

use crate::cache::KvCache;
use crate::constraint::Constraint;
use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::sampler::Sampler;
use crate::tokenizer::{StreamDecoder, Tokenizer};

mod forced;
mod prefill;
mod speculative;
mod stop;
mod types;
pub(crate) use speculative::DraftState;
pub use speculative::{Draft, MAX_DRAFT_TOKENS};
use stop::StopMatcher;
pub use types::{FinishReason, GenerationEvent, GenerationParams, Prompt, Usage};

/// Same chunk as mlx-lm's default `prefill_step_size`, so long prompts round identically. The
/// engine thread asks for smaller chunks while other sequences are decoding (see
/// `actor::pace`), so that they keep streaming.
pub(crate) const PREFILL_CHUNK: usize = 2048;

/// Where a sequence is.
enum Phase {
    /// Prompt tokens still to run through the model (all but the last).
    Prefill {
        next: usize,
    },
    /// Decoding; `pending` is the scheduled next token (and its logprob).
    Decode {
        pending: (Array, Option<Array>),
    },
    /// Decoding with a draft model: `last` was generated and sent, not yet read by the model.
    Speculate {
        last: u32,
    },
    Finished,
}

/// One running generation, stepped by the engine thread.
pub(crate) struct Sequence {
    prompt: Vec<u32>,
    /// Every token read so far (the stop token included): with the prompt, what was fed.
    history: Vec<u32>,
    /// Prompt tokens taken from a prompt cache.
    cached: usize,
    params: GenerationParams,
    cache: KvCache,
    sampler: Sampler,
    decoder: StreamDecoder,
    stop: StopMatcher,
    phase: Phase,
    generated: usize,
    started: Instant,
    first_token: Option<Instant>,
    /// The grammar its tokens must follow.
    constraint: Option<Constraint>,
    /// Tokens its grammar forced after the token being read, already run through the model with
    /// it: sent right after it.
    forced: Vec<u32>,
    /// Its draft model's state, when it decodes speculatively.
    draft: Option<DraftState>,
}

/// Shorter shared beginnings are recomputed: reuse pays off for long prefixes (a conversation's
/// history, a long system prompt), and short prompts keep exactly the computation of a fresh run.
pub(crate) const MIN_REUSE: usize = 256;

/// The keys and values of a model's last finished sequence and the tokens they belong to (one per
/// model, like mlx-lm's server): a request that starts the same way skips those positions.
pub(crate) struct PromptCache {
    tokens: Vec<u32>,
    cache: KvCache,
}

impl PromptCache {
    /// Positions of `prompt` this cache can supply: the common beginning, leaving at least the
    /// prompt's last token to compute (its logits give the first new token).
    pub(crate) fn shared(&self, prompt: &[u32]) -> usize {
        let common = self.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        common.min(prompt.len().saturating_sub(1))
    }

    /// Whether `prompt` shares enough with this cache to use it.
    pub(crate) fn serves(&self, prompt: &[u32]) -> bool {
        self.shared(prompt) >= MIN_REUSE
    }

    /// Bytes of its key/value buffers.
    pub(crate) fn nbytes(&self) -> usize {
        self.cache.nbytes()
    }
}

/// The result of one step.
pub(crate) enum Step {
    /// Nothing to report yet (a prefill chunk ran).
    Continue,
    /// A token to send; the sequence goes on.
    Token(GenerationEvent),
    /// Several tokens to send (a speculative round); the sequence goes on.
    Tokens(Vec<GenerationEvent>),
    /// The last events of the sequence.
    Finished(Vec<GenerationEvent>),
}

/// A generated token, read.
enum Taken {
    Token(GenerationEvent),
    /// The sequence ended (with this token's event when it counts).
    End(Step),
}

/// The id (and log-probability) of a computed token.
fn read_token((token, logprob): (Array, Option<Array>)) -> Result<(u32, Option<f32>)> {
    let id = token.try_item_cast::<u32>().map_err(|e| EngineError::Mlx { message: e.to_string() })?;
    let logprob = match logprob {
        Some(l) => Some(l.try_item_cast::<f32>().map_err(|e| EngineError::Mlx { message: e.to_string() })?),
        None => None,
    };
    Ok((id, logprob))
}

impl Sequence {
    /// Bytes of this sequence's key/value cache.
    pub(crate) fn cache_bytes(&self) -> usize {
        self.cache.nbytes()
    }

    /// Tokens in the prompt.
    pub(crate) fn prompt_len(&self) -> usize {
        self.prompt.len()
    }

    /// The keys and values this finished sequence computed, with the tokens they belong to, for
    /// the next request that starts the same way. None unless it finished normally.
    pub(crate) fn into_prompt_cache(self) -> Option<PromptCache> {
        if !matches!(self.phase, Phase::Finished) {
            return None;
        }
        let filled = self.cache.layers.first().map_or(0, |l| l.offset()) as usize;
        let mut tokens = self.prompt;
        tokens.extend(self.history);
        tokens.truncate(filled);
        // A shorter sequence could never serve a request (reuse needs MIN_REUSE shared tokens).
        (filled > MIN_REUSE).then_some(PromptCache { tokens, cache: self.cache })
    }

    /// `reuse`: a prompt cache that shares at least its first [`MIN_REUSE`] tokens with `prompt`
    /// (see [`PromptCache::shared`]); its keys and values for the shared part are kept.
    pub(crate) fn new(
        model: &Model,
        tokenizer: &Tokenizer,
        prompt: Vec<u32>,
        params: GenerationParams,
        reuse: Option<PromptCache>,
    ) -> Result<Sequence> {
        params.sampling.validate(tokenizer.vocab_size().max(model.config.vocab_size as usize))?;
        let vocab = model.config.vocab_size as u32;
        if let Some(bad) = prompt.iter().find(|&&t| t >= vocab) {
            return Err(EngineError::InvalidRequest {
                field: "prompt",
                message: format!("token id {bad} is outside the vocabulary ({vocab})"),
            });
        }
        if let Some(ctx) = model.config.max_position_embeddings {
            if prompt.len() >= ctx {
                return Err(EngineError::ContextLength { prompt_tokens: prompt.len(), context_length: ctx });
            }
        }
        let mut sampler = Sampler::new(params.sampling.clone())?;
        sampler.observe(&Array::from_slice(&prompt, &[prompt.len() as i32]))?;
        let stop = StopMatcher {
            stops: params.stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        };
        let (cache, cached) = match reuse {
            Some(mut pc) => {
                let shared = pc.cache.trim(pc.shared(&prompt) as i32) as usize;
                (pc.cache, shared)
            }
            None => (model.new_cache(), 0),
        };
        Ok(Sequence {
            history: Vec::new(),
            cached,
            phase: Phase::Prefill { next: cached },
            prompt,
            params,
            cache,
            sampler,
            decoder: StreamDecoder::new(),
            stop,
            generated: 0,
            started: Instant::now(),
            first_token: None,
            constraint: None,
            forced: Vec::new(),
            draft: None,
        })
    }

    /// Holds the sequence's tokens to `constraint` (compiled, its first mask computed).
    pub(crate) fn attach(&mut self, constraint: Constraint) {
        self.constraint = Some(constraint);
    }

    fn sample(&mut self, logits: Array) -> Result<(Array, Option<Array>)> {
        let width = logits.shape()[1] as usize;
        let logits = match self.constraint.as_mut().and_then(|c| c.take_mask(width)) {
            Some(mask) => logits.add(mask.as_dtype(logits.dtype())?)?,
            None => logits,
        };
        let (token, logprob) = self.sampler.sample(logits, self.params.logprobs)?;
        self.sampler.observe(&token)?;
        Ok((token, logprob))
    }

    /// Computes the token after `input`; `read`: `input` is this sequence's last generated token
    /// (a constraint reads it before the next mask).
    fn schedule(
        &mut self,
        model: &Model,
        input: &Array,
        read: Option<(&Tokenizer, &std::collections::BTreeSet<u32>)>,
    ) -> Result<(Array, Option<Array>)> {
        let mut logits = model.logits(input, &mut self.cache)?;
        let limit = self.forced_limit();
        if let (Some(c), Some((tokenizer, eos))) = (self.constraint.as_mut(), read) {
            mlx_rs::transforms::async_eval([&logits])?;
            crate::constraint::prepare(vec![(c, input, limit)], tokenizer, eos)?;
            if let Some(after) = self.run_forced(model)? {
                logits = after;
            }
        }
        let (token, logprob) = self.sample(logits)?;
        let mut outputs = vec![&token];
        outputs.extend(logprob.iter());
        mlx_rs::transforms::async_eval(outputs)?;
        Ok((token, logprob))
    }

    /// The whole prompt, while this sequence has not started and can run it in one pass with
    /// other new prompts: nothing taken from a prompt cache, and no longer than `chunk` tokens
    /// (at most one prefill chunk).
    pub(crate) fn fresh_prompt(&self, chunk: usize) -> Option<&[u32]> {
        let fresh = matches!(self.phase, Phase::Prefill { next: 0 }) && self.cached == 0;
        (fresh && self.prompt.len() <= chunk.min(PREFILL_CHUNK)).then_some(self.prompt.as_slice())
    }

    /// Prompt positions in its cache so far (a prompt cache's included).
    pub(crate) fn prefilled(&self) -> usize {
        match self.phase {
            Phase::Prefill { next } => next,
            _ => self.prompt.len(),
        }
    }

    /// Empties the cache of a sequence that has not started (after a failed batched prefill).
    pub(crate) fn reset_cache(&mut self, model: &Model) {
        self.cache = model.new_cache();
    }

    /// Runs the prompts of `seqs` (each one's [`Sequence::fresh_prompt`]) through the model as one
    /// batch and schedules each one's first token, as one evaluation. On an error none of them
    /// can go on.
    pub(crate) fn prefill_together(model: &Model, seqs: &mut [&mut Sequence]) -> Result<()> {
        let outputs = Sequence::prefill_graph(model, seqs)?;
        mlx_rs::transforms::async_eval(&outputs)?;
        Ok(())
    }

    /// [`Sequence::prefill_together`] without evaluating: the arrays to evaluate.
    pub(crate) fn prefill_graph(model: &Model, seqs: &mut [&mut Sequence]) -> Result<Vec<Array>> {
        let (prompts, mut caches): (Vec<&[u32]>, Vec<&mut KvCache>) = seqs
            .iter_mut()
            .map(|s| {
                let s = &mut **s;
                (s.prompt.as_slice(), &mut s.cache)
            })
            .unzip();
        let logits = model.prefill_fresh(&prompts, &mut caches)?;
        let mut outputs = Vec::new();
        for (i, seq) in seqs.iter_mut().enumerate() {
            let row = i as i32;
            let (token, logprob) = seq.sample(logits.try_index((row..row + 1, ..))?)?;
            outputs.push(token.clone());
            outputs.extend(logprob.iter().cloned());
            outputs.extend(seq.cache.layers.iter().flat_map(|l| l.state()).cloned());
            seq.phase = Phase::Decode { pending: (token, logprob) };
        }
        Ok(outputs)
    }

    /// Advances a prompt that is not prefilled with others ([`Sequence::prefill_together`]) by
    /// one piece of about `chunk` tokens (one more or one less where a piece of one token would
    /// put sliding windows out of mlx-lm's order: `prefill::piece_end`); the last step schedules
    /// its first token. Decoding sequences advance in [`Sequence::decode_together`].
    pub(crate) fn prefill_step(&mut self, model: &Model, chunk: usize) -> Result<Step> {
        let next = match self.phase {
            Phase::Prefill { next } => next,
            Phase::Decode { .. } | Phase::Speculate { .. } => return Ok(Step::Continue),
            Phase::Finished => return Ok(Step::Finished(Vec::new())),
        };
        let last = self.prompt.len() - 1;
        if next < last {
            // About `chunk` tokens, cut so that sliding windows end as mlx-lm's chunks leave them.
            let end = prefill::piece_end(self.cached, next, last, chunk);
            let chunk = Array::from_slice(&self.prompt[next..end], &[(end - next) as i32]);
            model.hidden(&chunk, &mut self.cache)?;
            mlx_rs::transforms::eval(self.cache.layers.iter().flat_map(|l| l.state()))?;
            self.phase = Phase::Prefill { next: end };
            return Ok(Step::Continue);
        }
        let input = Array::from_slice(&self.prompt[last..], &[1]);
        let pending = self.schedule(model, &input, None)?;
        self.phase = Phase::Decode { pending };
        Ok(Step::Continue)
    }

    /// Whether the token being computed is not the last one `max_tokens` allows.
    fn goes_on(&self) -> bool {
        self.generated + 1 < self.params.max_tokens
    }

    /// Whether this sequence is past its prompt: its next token is scheduled (it can join
    /// [`Sequence::decode_together`] unless it is [`Sequence::speculative`]).
    pub(crate) fn decoding(&self) -> bool {
        matches!(self.phase, Phase::Decode { .. } | Phase::Speculate { .. })
    }

    /// Advances every sequence of `seqs` (all [`Sequence::decoding`], same model) by one token,
    /// computing the following tokens of those that go on as one batch
    /// ([`Model::decode_rows`]). One step result per sequence, in order; an error in the batch
    /// ends them all.
    pub(crate) fn decode_together(
        model: &Model,
        tokenizer: &Tokenizer,
        eos: &std::collections::BTreeSet<u32>,
        seqs: &mut [&mut Sequence],
    ) -> Result<Vec<Result<Step>>> {
        let pending: Vec<(Array, Option<Array>)> = seqs
            .iter_mut()
            .map(|s| match std::mem::replace(&mut s.phase, Phase::Finished) {
                Phase::Decode { pending } => pending,
                _ => unreachable!("decode_together takes decoding sequences without a draft"),
            })
            .collect();
        let going: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i].goes_on()).collect();
        let mut next: Vec<Option<(Array, Option<Array>)>> = (0..seqs.len()).map(|_| None).collect();
        if let [i] = going[..] {
            // One row: the single-sequence pass (fewer operations than a batch of one).
            next[i] = Some(seqs[i].schedule(model, &pending[i].0, Some((tokenizer, eos)))?);
        } else if !going.is_empty() {
            let tokens = ops::concatenate(&going.iter().map(|&i| &pending[i].0).collect::<Vec<_>>(), 0)?;
            let logits = {
                let mut caches: Vec<&mut KvCache> =
                    seqs.iter_mut().enumerate().filter(|(i, _)| going.contains(i)).map(|(_, s)| &mut s.cache).collect();
                model.decode_rows(&tokens, &mut caches)?
            };
            // Constrained rows read their token and compute their next mask while the pass runs.
            let rows: Vec<(&mut Constraint, &Array, usize)> = seqs
                .iter_mut()
                .zip(&pending)
                .enumerate()
                .filter(|(i, _)| going.contains(i))
                .filter_map(|(_, (s, p))| {
                    let limit = s.forced_limit();
                    s.constraint.as_mut().map(|c| (c, &p.0, limit))
                })
                .collect();
            if !rows.is_empty() {
                mlx_rs::transforms::async_eval([&logits])?;
                crate::constraint::prepare(rows, tokenizer, eos)?;
            }
            let mut outputs = Vec::new();
            for (row, &i) in going.iter().enumerate() {
                let row = row as i32;
                // A row whose grammar forced tokens runs them on its own, after the batch.
                let logits = match seqs[i].run_forced(model)? {
                    Some(after) => after,
                    None => logits.try_index((row..row + 1, ..))?,
                };
                let (token, logprob) = seqs[i].sample(logits)?;
                outputs.push(token.clone());
                outputs.extend(logprob.iter().cloned());
                next[i] = Some((token, logprob));
            }
            mlx_rs::transforms::async_eval(&outputs)?;
        }
        Ok(seqs
            .iter_mut()
            .zip(pending)
            .zip(next)
            .map(|((s, current), next)| s.emit(tokenizer, eos, current, next))
            .collect())
    }

    /// Reads the token `current` (computed by an earlier step) and reports it, with the tokens
    /// its grammar forced after it (their log-probability is 0: the grammar left no other
    /// choice); `next` is the following token, already scheduled, unless this one is the last.
    fn emit(
        &mut self,
        tokenizer: &Tokenizer,
        eos: &std::collections::BTreeSet<u32>,
        current: (Array, Option<Array>),
        next: Option<(Array, Option<Array>)>,
    ) -> Result<Step> {
        let (id, logprob) = read_token(current)?;
        let forced = std::mem::take(&mut self.forced);
        let certain = logprob.map(|_| 0.0);
        let mut events = Vec::with_capacity(1 + forced.len());
        let read = std::iter::once((id, logprob)).chain(forced.iter().map(|&f| (f, certain)));
        for (n, (id, logprob)) in read.enumerate() {
            match self.take(tokenizer, eos, id, logprob, next.is_none())? {
                Taken::Token(event) => events.push(event),
                Taken::End(step) => {
                    // The model read the forced tokens after this one too.
                    self.history.extend(forced.iter().skip(n));
                    return Ok(match step {
                        Step::Finished(mut end) => {
                            events.append(&mut end);
                            Step::Finished(events)
                        }
                        other => other,
                    });
                }
            }
        }
        self.phase = Phase::Decode { pending: next.expect("not the last") };
        Ok(match events.len() {
            1 => Step::Token(events.pop().expect("one")),
            _ => Step::Tokens(events),
        })
    }

    /// Takes generated token `id`: its event, or the end of the sequence (a stop token or string,
    /// or `last`: `max_tokens` reached).
    fn take(
        &mut self,
        tokenizer: &Tokenizer,
        eos: &std::collections::BTreeSet<u32>,
        id: u32,
        logprob: Option<f32>,
        last: bool,
    ) -> Result<Taken> {
        if self.first_token.is_none() {
            self.first_token = Some(Instant::now());
        }
        self.history.push(id);
        if eos.contains(&id) || self.params.stop_token_ids.contains(&id) {
            return self.finish(tokenizer, FinishReason::Stop, None, None).map(Taken::End);
        }
        self.generated += 1;
        let piece = self.decoder.push(tokenizer, id)?;
        let (text, hit) = self.stop.push(&piece);
        let event = GenerationEvent::Token { id, text, logprob };
        if hit.is_some() {
            return self.finish(tokenizer, FinishReason::Stop, hit, Some(event)).map(Taken::End);
        }
        if last {
            return self.finish(tokenizer, FinishReason::Length, None, Some(event)).map(Taken::End);
        }
        Ok(Taken::Token(event))
    }

    fn finish(
        &mut self,
        tokenizer: &Tokenizer,
        mut reason: FinishReason,
        mut stop_sequence: Option<String>,
        last: Option<GenerationEvent>,
    ) -> Result<Step> {
        self.phase = Phase::Finished;
        let text = if reason == FinishReason::Stop
            && matches!(last, Some(GenerationEvent::Token { .. }))
            && self.stop.pending.is_empty()
        {
            String::new()
        } else {
            let tail = self.decoder.finish(tokenizer)?;
            let (mut text, hit) = self.stop.push(&tail);
            match hit {
                Some(stop) => {
                    reason = FinishReason::Stop;
                    stop_sequence = Some(stop);
                }
                None => text.push_str(&self.stop.flush()),
            }
            text
        };
        let first = self.first_token.unwrap_or_else(Instant::now);
        let usage = Usage {
            prompt_tokens: self.prompt.len(),
            completion_tokens: self.generated,
            prompt_seconds: first.duration_since(self.started).as_secs_f64(),
            generation_seconds: Instant::now().duration_since(first).max(Duration::from_nanos(1)).as_secs_f64(),
            cached_tokens: self.cached,
            draft_tokens: self.draft.as_ref().map(DraftState::counts),
        };
        let mut events: Vec<GenerationEvent> = last.into_iter().collect();
        events.push(GenerationEvent::Done { text, finish_reason: reason, stop_sequence, usage });
        Ok(Step::Finished(events))
    }
}
