//! How much prompt work one engine step may do while other sequences are decoding. The engine
//! thread does one thing at a time: a 2048-token prefill chunk of a realistic model takes most of
//! a second on a laptop CPU, and every running stream would stop for that long. So while anything
//! is decoding, prompts are prefilled in slices that take about [`SLICE_STEPS`] decode steps (at
//! least [`MIN_SLICE_TIME`]), and a decode step runs between any two slices: a running stream's
//! longest pause stays a few tokens long, and a long prompt still gets most of the thread. With
//! nothing decoding, a prompt runs in mlx-lm's own chunks (identical rounding). The rates are
//! measured as the engine runs, so the slice fits whatever model and machine it is on, and how
//! far into its prompt a sequence is: a position costs more the more positions it attends to, so
//! a sequence's next slice is sized by its own last one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::generate::PREFILL_CHUNK;

/// A prefill slice takes about this many decode steps.
const SLICE_STEPS: f64 = 4.0;
/// A slice may always take this long (shorter ones would cost the prompt more in per-pass work
/// than a running stream gains: a pause this short is not seen between tokens).
const MIN_SLICE_TIME: f64 = 0.025;
/// Slices are never shorter than this many positions (per-pass costs dominate below it).
const MIN_SLICE: usize = 16;
/// A batch of new prompts before the model's prefill rate is measured.
const FIRST_BATCH: usize = 256;
/// Weight of the newest measurement in the moving averages.
const NEW: f64 = 0.25;
/// Intervals longer than this between two decode steps were not decode steps (the thread was
/// idle, waiting for readers, or loading).
const LONGEST_STEP: Duration = Duration::from_secs(2);

/// What the engine thread did last.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Work {
    Prefill,
    Decode,
}

#[derive(Default)]
pub(super) struct Pace {
    /// Seconds per prefill position, per model.
    prefill: HashMap<String, f64>,
    /// Seconds per decode step (any model's batch).
    decode: Option<f64>,
    /// The last step: what, and when it started.
    last: Option<(Work, Instant)>,
}

fn average(old: Option<f64>, new: f64) -> f64 {
    old.map_or(new, |old| old + NEW * (new - old))
}

impl Pace {
    /// A step of `work` starts now; for decode steps that follow decode steps, the interval is
    /// one decode step's time (they are pipelined: each waits for the one before).
    pub(super) fn starting(&mut self, work: Work) {
        let now = Instant::now();
        if let (Work::Decode, Some((Work::Decode, then))) = (work, self.last) {
            let step = now.duration_since(then);
            if step < LONGEST_STEP {
                self.decode = Some(average(self.decode, step.as_secs_f64()));
            }
        }
        self.last = Some((work, now));
    }

    /// A prefill slice of `positions` positions of `model` took `took`: returns its seconds per
    /// position, the sequence's own rate for its next slice. (A prompt's last position is a
    /// whole pass that also schedules its first token: not a rate.)
    pub(super) fn prefilled(&mut self, model: &str, positions: usize, took: Duration) -> Option<f64> {
        if positions < 2 {
            return None;
        }
        let per = took.as_secs_f64() / positions as f64;
        if !self.prefill.contains_key(model) {
            // A model's rate stands for a sequence's first slice: kept from the first measured.
            self.prefill.insert(model.to_string(), per);
        }
        Some(per)
    }

    /// Whether the last step was a prefill slice.
    pub(super) fn after_prefill(&self) -> bool {
        matches!(self.last, Some((Work::Prefill, _)))
    }

    /// The most positions (rows × longest prompt) a batch of new prompts of `model` may take:
    /// a slice while `others_decoding`, else a whole chunk.
    pub(super) fn batch(&self, model: &str, others_decoding: bool) -> usize {
        self.slice(model, others_decoding, None).unwrap_or(FIRST_BATCH)
    }

    /// The most positions of a prompt of `model` one step may prefill: a slice while
    /// `others_decoding`, else a whole chunk. `rate`: the sequence's own last seconds per
    /// position, if it has run a slice. Before anything is measured, a short slice measures.
    pub(super) fn chunk(&self, model: &str, others_decoding: bool, rate: Option<f64>) -> usize {
        self.slice(model, others_decoding, rate).unwrap_or(MIN_SLICE)
    }

    /// A slice's positions once the rates are known.
    fn slice(&self, model: &str, others_decoding: bool, rate: Option<f64>) -> Option<usize> {
        if !others_decoding {
            return Some(PREFILL_CHUNK);
        }
        match (self.decode, rate.or_else(|| self.prefill.get(model).copied())) {
            (Some(step), Some(per)) if per > 0.0 => {
                let time = (SLICE_STEPS * step).max(MIN_SLICE_TIME);
                Some(((time / per) as usize).clamp(MIN_SLICE, PREFILL_CHUNK))
            }
            _ => None,
        }
    }

    /// Forgets a model's rates (unloaded).
    pub(super) fn forget(&mut self, model: &str) {
        self.prefill.remove(model);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_takes_a_few_decode_steps_and_a_chunk_when_nothing_decodes() {
        let mut pace = Pace::default();
        assert_eq!(pace.chunk("m", false, None), PREFILL_CHUNK);
        assert_eq!(pace.batch("m", false), PREFILL_CHUNK);
        assert_eq!(pace.chunk("m", true, None), MIN_SLICE, "unmeasured: a short slice measures");
        assert_eq!(pace.batch("m", true), FIRST_BATCH);
        // 10 ms decode steps, 0.1 ms per prompt position: four steps are 400 positions.
        pace.decode = Some(0.010);
        let rate = pace.prefilled("m", 100, Duration::from_millis(10));
        assert_eq!(rate, Some(0.0001));
        assert_eq!(pace.chunk("m", true, None), 400);
        // Further into its prompt, a sequence's positions cost more: its own rate decides.
        assert_eq!(pace.chunk("m", true, Some(0.0004)), 100);
        // Fast decode steps: a slice still takes the least time worth a pass.
        pace.decode = Some(0.001);
        assert_eq!(pace.chunk("m", true, None), 250);
        // A much slower model is held to the floor, a much faster one to mlx-lm's chunk.
        pace.prefilled("slow", 2, Duration::from_secs(2));
        assert_eq!(pace.chunk("slow", true, None), MIN_SLICE);
        pace.prefilled("fast", 1_000_000, Duration::from_millis(1));
        assert_eq!(pace.batch("fast", true), PREFILL_CHUNK);
        assert_eq!(pace.prefilled("m", 1, Duration::from_secs(1)), None, "a last position is not a rate");
        pace.forget("m");
        assert_eq!(pace.batch("m", true), FIRST_BATCH);
    }

    #[test]
    fn only_back_to_back_decode_steps_measure_a_step() {
        let mut pace = Pace::default();
        pace.starting(Work::Decode);
        pace.starting(Work::Prefill);
        pace.starting(Work::Decode);
        assert_eq!(pace.decode, None);
        assert!(!pace.after_prefill());
        pace.starting(Work::Decode);
        assert!(pace.decode.is_some());
    }
}
