//! Concurrent requests for the same model run through it together: new prompts as one padded
//! pass (instead of one pass per prompt, two in mlx-lm's split), decoding sequences one token each
//! per pass, so they share the per-operation cost that dominates small models and, for decoding,
//! one read of the weights per token. On the CPU, a large enough batch of new prompts is split
//! across MLX streams so that it computes on several cores.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};
use crate::generate::{Sequence, Step};
use crate::loaded::Loaded;
use crate::model::Model;

use super::Running;

/// At most this many prompts in one pass.
const MAX_BATCH: usize = 16;

/// Moves `first` and the requests of `running` that `joins` accepts (given the batch's size so
/// far) into one batch: same model, reader still there with room for a token and the final event,
/// at most [`MAX_BATCH`] in all. The others stay in `running`, in order.
fn gather(
    running: &mut VecDeque<Running>,
    first: Running,
    mut joins: impl FnMut(&Running, usize) -> bool,
) -> Vec<Running> {
    let mut batch = vec![first];
    let mut rest = VecDeque::with_capacity(running.len());
    while let Some(r) = running.pop_front() {
        let fits = batch.len() < MAX_BATCH
            && r.model == batch[0].model
            && !r.events.is_closed()
            && r.events.capacity() >= r.seq.room()
            && joins(&r, batch.len());
        if fits {
            batch.push(r);
        } else {
            rest.push_back(r);
        }
    }
    *running = rest;
    batch
}

/// MLX streams on the CPU, one per core (up to [`Streams::MAX`]), each with its own MLX thread.
/// MLX runs a stream's kernels one after another on that thread, and on the CPU most of a short
/// prompt's time is elementwise work there (libmlx's scalar `exp` in softmax and SiLU): a batch of
/// new prompts split into parts on different streams, evaluated together, computes on several
/// cores. On the GPU there is one stream (kernels already run in parallel there).
pub(super) struct Streams {
    all: Vec<mlx_rs::Stream>,
    /// Batches split so far.
    split: u64,
}

impl Streams {
    /// At most this many streams.
    const MAX: usize = 4;
    /// A batch is split only into parts of at least this many positions (rows × longest prompt):
    /// four 16-token prompts were slower as two parts on two vCPUs, four 33-token ones faster.
    const MIN_PART_POSITIONS: usize = 64;

    /// One stream per available core on the CPU (the default stream first); none on the GPU or
    /// with one core.
    pub(super) fn for_default_device() -> Streams {
        let cpu = mlx_rs::Device::cpu();
        let on_cpu = mlx_rs::Device::try_default().is_ok_and(|d| d == cpu);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(Streams::MAX);
        let all = if on_cpu && cores > 1 {
            std::iter::once(mlx_rs::Stream::new())
                .chain((1..cores).map(|_| mlx_rs::Stream::new_with_device(&cpu)))
                .collect()
        } else {
            Vec::new()
        };
        Streams { all, split: 0 }
    }

    pub(super) fn split_batches(&self) -> u64 {
        self.split
    }

    /// Into how many parts a batch of `prompts` new prompts padded to `longest` is split for
    /// `model`. Not when a part's matrix products would use all of OpenBLAS's threads: the cores
    /// are busy then already (four 33-token prompts of a 512-wide model took 47 ms split, 42 ms
    /// not).
    fn parts(&self, model: &Model, prompts: usize, longest: usize) -> usize {
        let parts = (prompts * longest / Streams::MIN_PART_POSITIONS).clamp(1, self.all.len().max(1)).min(prompts);
        if parts > 1 && model.blas_parallel(prompts.div_ceil(parts) * longest, longest) {
            return 1;
        }
        parts
    }

    /// Builds the passes of `seqs` split into `parts` (one per stream) and schedules them with
    /// one evaluation, so that the streams' threads compute at the same time (with one
    /// evaluation per part they did not overlap: measured, no gain).
    fn prefill_parts(&mut self, model: &Model, seqs: &mut [&mut Sequence], parts: usize) -> Result<()> {
        self.split += 1;
        let mut outputs = Vec::new();
        let mut rest = seqs;
        for (part, stream) in self.all.iter().take(parts).enumerate() {
            let (chunk, tail) = rest.split_at_mut(rest.len().div_ceil(parts - part));
            rest = tail;
            outputs.extend(mlx_rs::with_stream(stream, || Sequence::prefill_graph(model, chunk))?);
        }
        mlx_rs::transforms::async_eval(&outputs)?;
        Ok(())
    }
}

/// Prefills `first` (a new prompt, see [`Sequence::fresh_prompt`]) together with the new prompts
/// for the same model waiting in `running` (which keeps the others), scheduling each one's first
/// token; at most `positions` positions (rows × longest prompt, padding included: one prefill
/// chunk or slice, see [`super::pace`]). A large enough batch is split across `streams`. Returns each with its step result; a
/// failed batch is retried one request at a time, so a request only ever gets its own error.
pub(super) fn prefill_new_prompts(
    running: &mut VecDeque<Running>,
    loaded: &Loaded,
    first: Running,
    streams: &mut Streams,
    positions: usize,
) -> Vec<(Running, Result<Step>)> {
    let mut longest = first.seq.prompt_len();
    let mut batch = gather(running, first, |r, n| match r.seq.fresh_prompt(positions) {
        Some(p) if longest.max(p.len()) * (n + 1) <= positions => {
            longest = longest.max(p.len());
            true
        }
        _ => false,
    });
    let parts = streams.parts(&loaded.model, batch.len(), longest);
    let result = {
        let span = batch[0].span.clone();
        let mut seqs: Vec<&mut Sequence> = batch.iter_mut().map(|r| &mut r.seq).collect();
        span.in_scope(|| {
            tracing::debug!(prompts = seqs.len(), positions = longest * seqs.len(), parts, "prefill batch");
            if parts > 1 {
                streams.prefill_parts(&loaded.model, &mut seqs, parts)
            } else {
                Sequence::prefill_together(&loaded.model, &mut seqs)
            }
        })
    };
    match result {
        Ok(()) => batch.into_iter().map(|r| (r, Ok(Step::Continue))).collect(),
        Err(e) if batch.len() == 1 => vec![(batch.pop().expect("one"), Err(e))],
        Err(e) => {
            // Whatever failed (a batch too large for memory, one bad request), each request
            // gets its own try.
            tracing::warn!(error = %e, prompts = batch.len(), "batched prefill failed; prefilling one by one");
            batch
                .into_iter()
                .map(|mut r| {
                    r.seq.reset_cache(&loaded.model);
                    let step = r.span.in_scope(|| Sequence::prefill_together(&loaded.model, &mut [&mut r.seq]));
                    (r, step.map(|()| Step::Continue))
                })
                .collect()
        }
    }
}

/// Steps `first` (a decoding sequence) together with the other decoding sequences of its model
/// in `running` that can take a token: one forward pass computes the next token of all of them.
/// Returns each with its step result (and leaves the rest in `running`).
pub(super) fn decode_running(
    running: &mut VecDeque<Running>,
    loaded: &Loaded,
    first: Running,
) -> Vec<(Running, Result<Step>)> {
    let mut batch = gather(running, first, |r, _| r.seq.decoding() && !r.seq.speculative());
    let result = {
        let span = batch[0].span.clone();
        let mut seqs: Vec<&mut Sequence> = batch.iter_mut().map(|r| &mut r.seq).collect();
        span.in_scope(|| Sequence::decode_together(&loaded.model, &loaded.tokenizer, &loaded.eos, &mut seqs))
    };
    match result {
        Ok(steps) => batch.into_iter().zip(steps).collect(),
        Err(e) => {
            let message = match e {
                EngineError::Mlx { message } => message,
                other => other.to_string(),
            };
            batch.into_iter().map(|r| (r, Err(EngineError::Mlx { message: message.clone() }))).collect()
        }
    }
}

/// How long after a request finishes its client counts as likely to send the next one.
const RECENT: Duration = Duration::from_millis(3);
/// The longest a new prompt waits for others to share its prefill.
const GATHER: Duration = Duration::from_micros(500);

/// Decides whether new prompts should wait a moment before their prefill: when requests have
/// just finished and fewer new prompts than that have arrived, those clients are usually about
/// to send their next request (an agent's parallel calls, a benchmark's workers), and a batch
/// that waits half a millisecond for them does one pass instead of several. A lone client never
/// waits (its own finished request is the only recent one), and nothing waits while any other
/// sequence has work to do.
#[derive(Default)]
pub(super) struct Gather {
    finished: VecDeque<Instant>,
    deadline: Option<Instant>,
}

impl Gather {
    /// A request ended.
    pub(super) fn finished(&mut self) {
        self.finished.push_back(Instant::now());
    }

    /// A prefill ran: the clients that were expected either came or will be handled next time.
    pub(super) fn prefilled(&mut self) {
        self.finished.clear();
        self.deadline = None;
    }

    /// How long to wait for more new prompts before stepping `running`, if at all.
    pub(super) fn wait(&mut self, running: &VecDeque<Running>) -> Option<Duration> {
        let fresh = running.iter().filter(|r| r.seq.fresh_prompt(crate::generate::PREFILL_CHUNK).is_some()).count();
        self.wait_for(fresh, running.len(), Instant::now())
    }

    /// [`Gather::wait`] with `fresh` new prompts among `running` sequences at `now`.
    fn wait_for(&mut self, fresh: usize, running: usize, now: Instant) -> Option<Duration> {
        if fresh == 0 || fresh != running {
            return None;
        }
        while self.finished.front().is_some_and(|t| now.duration_since(*t) > RECENT) {
            self.finished.pop_front();
        }
        if fresh >= self.finished.len() {
            return None;
        }
        let deadline = *self.deadline.get_or_insert(now + GATHER);
        deadline.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prompts_expected_to_have_company_wait_and_never_past_the_window() {
        let now = Instant::now();
        // A lone client: its own request finished, its next one arrives: no wait.
        let mut g = Gather::default();
        g.finished.push_back(now);
        assert_eq!(g.wait_for(1, 1, now), None);
        // Four requests just finished, one new prompt so far: wait, at most the window.
        let mut g = Gather::default();
        g.finished.extend([now; 4]);
        let wait = g.wait_for(1, 1, now).expect("waits for the others");
        assert!(wait <= GATHER);
        // Three of the four are back: still waiting, on the same deadline.
        assert!(g.wait_for(3, 3, now + Duration::from_micros(100)).unwrap() <= GATHER - Duration::from_micros(100));
        // All four are back: go.
        assert_eq!(g.wait_for(4, 4, now + Duration::from_micros(200)), None);
        // The window is over: go with what is there.
        assert_eq!(g.wait_for(2, 2, now + GATHER), None);
        // Another sequence is decoding: never hold it up.
        let mut g = Gather::default();
        g.finished.extend([now; 4]);
        assert_eq!(g.wait_for(1, 2, now), None);
        // The finished requests are too old to expect their clients back.
        let mut g = Gather::default();
        g.finished.extend([now; 4]);
        assert_eq!(g.wait_for(1, 1, now + RECENT + Duration::from_millis(1)), None);
        // After a prefill, a new round starts from nothing.
        let mut g = Gather::default();
        g.finished.extend([now; 4]);
        g.prefilled();
        assert_eq!(g.wait_for(1, 1, now), None);
    }
}
