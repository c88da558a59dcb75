//! New prompts for the same model run through it together: one forward pass for a batch of
//! prompts instead of one (two, in mlx-lm's split) per prompt, so concurrent short requests share
//! the per-operation cost that dominates small models.

use std::collections::VecDeque;

use crate::generate::Sequence;
use crate::loaded::Loaded;

use super::Running;

/// At most this many prompts in one pass.
const MAX_BATCH: usize = 16;
/// At most this many positions (rows × longest prompt, padding included) in one pass: as much
/// as one prefill chunk of a single long prompt.
const MAX_POSITIONS: usize = 2048;

/// Prefills `first` (a new prompt, see [`Sequence::fresh_prompt`]) together with the new prompts
/// for the same model waiting in `running`, and puts every one of them back at the end of
/// `running` with its first token scheduled. Requests whose reader is gone are dropped; a
/// request whose prefill fails gets its error and leaves. Returns how many prompts the pass took.
pub(super) fn prefill_new_prompts(running: &mut VecDeque<Running>, loaded: &Loaded, first: Running) -> usize {
    let mut longest = first.seq.prompt_len();
    let mut batch = vec![first];
    let mut rest = VecDeque::with_capacity(running.len());
    while let Some(r) = running.pop_front() {
        let joins = batch.len() < MAX_BATCH
            && r.model == batch[0].model
            && !r.events.is_closed()
            && r.events.capacity() >= 2
            && r.seq.fresh_prompt().is_some_and(|p| longest.max(p.len()) * (batch.len() + 1) <= MAX_POSITIONS);
        if joins {
            longest = longest.max(r.seq.prompt_len());
            batch.push(r);
        } else {
            rest.push_back(r);
        }
    }
    *running = rest;
    let result = {
        let span = batch[0].span.clone();
        let mut seqs: Vec<&mut Sequence> = batch.iter_mut().map(|r| &mut r.seq).collect();
        span.in_scope(|| {
            tracing::debug!(prompts = seqs.len(), positions = longest * seqs.len(), "prefill batch");
            Sequence::prefill_together(&loaded.model, &mut seqs)
        })
    };
    let prompts = batch.len();
    match result {
        Ok(()) => running.extend(batch),
        Err(e) if batch.len() == 1 => fail(batch.pop().expect("one"), e),
        Err(e) => {
            // Whatever failed (a batch too large for memory, one bad request), each request
            // gets its own try and only its own error.
            tracing::warn!(error = %e, prompts = batch.len(), "batched prefill failed; prefilling one by one");
            for mut r in batch {
                r.seq.reset_cache(&loaded.model);
                match r.span.in_scope(|| Sequence::prefill_together(&loaded.model, &mut [&mut r.seq])) {
                    Ok(()) => running.push_back(r),
                    Err(e) => fail(r, e),
                }
            }
        }
    }
    prompts
}

fn fail(r: Running, e: crate::error::EngineError) {
    tracing::warn!(parent: &r.span, error = %e, "generation failed");
    let _ = r.events.try_send(Err(e));
}
