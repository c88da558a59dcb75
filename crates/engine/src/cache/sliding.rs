//! A draft model's sliding-window layer: keys and values in temporal order, the window's
//! positions plus `spare` more, so that a speculative round can go back over the proposals the
//! model rejected. A draft's numbers need not be mlx-lm's (the model verifies every token, so
//! greedy output is the same whatever the draft proposes); its ring ([`super::rotating`]) holds
//! nothing before the window once it has wrapped, and a rejected proposal would make the draft
//! re-read the whole sequence. This is the window cache the engine had before the ring.

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{ops, Array};

use super::{write_after, zeros_like_steps, STEP};
use crate::error::Result;

/// Keys and values `[1, kv_heads, capacity, head_dim]`: the first `filled` positions hold
/// positions `start..start + filled` of the sequence, in order. Between passes at least the last
/// `window − 1 + spare` are kept (what the next queries can see, after going back `spare`); older
/// ones are dropped when the buffer would grow, so memory is bounded by the window, not the
/// sequence.
pub(crate) struct Sliding {
    keys: Option<Array>,
    values: Option<Array>,
    filled: i32,
    start: i32,
    /// How many positions a query sees (itself included).
    window: i32,
    /// Positions kept beyond the window, so that [`Sliding::trim`] can go back that far.
    spare: i32,
}

/// `buffer`'s positions `from..to` moved to the front of a new buffer with room for `room` more.
fn compacted(buffer: &Array, from: i32, to: i32, room: i32) -> Result<Array> {
    let kept = buffer.try_index((.., .., from..to, ..))?;
    Ok(ops::concatenate(&[kept, zeros_like_steps(buffer, room)?], 2)?)
}

impl Sliding {
    /// An empty window of `window` positions that keeps `spare` more to go back over.
    pub(crate) fn new(window: i32, spare: i32) -> Sliding {
        Sliding { keys: None, values: None, filled: 0, start: 0, window, spare: spare.max(0) }
    }

    /// Positions written so far (the RoPE offset of the next).
    pub(crate) fn offset(&self) -> i32 {
        self.start + self.filled
    }

    /// Writes a pass's keys and values after the history and returns every position held, in
    /// temporal order (at least the window before each new position; the attention masks or
    /// slices the rest away).
    pub(crate) fn update(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        let new = keys.shape()[2];
        let capacity = self.keys.as_ref().map_or(0, |k| k.shape()[2]);
        if let (Some(k), Some(v)) = (&self.keys, &self.values) {
            // Older positions are never seen again, even after going back `spare`: drop them
            // when the buffer would grow, or when it is far larger than needed (after a long
            // prompt).
            let keep = (self.window - 1 + self.spare).min(self.filled);
            if self.filled > keep && (self.filled + new > capacity || capacity >= keep + new + 2 * STEP) {
                let from = self.filled - keep;
                self.keys = Some(compacted(k, from, self.filled, new)?);
                self.values = Some(compacted(v, from, self.filled, new)?);
                self.start += from;
                self.filled = keep;
            }
        }
        self.filled = write_after(&mut self.keys, &mut self.values, self.filled, &keys, &values)?;
        self.stored()
    }

    /// Every position held, in temporal order (what the last pass's queries attended over).
    pub(crate) fn stored(&self) -> Result<(Array, Array)> {
        let (k, v) = (self.keys.as_ref().expect("stored before read"), self.values.as_ref().expect("stored"));
        Ok((k.try_index((.., .., ..self.filled, ..))?, v.try_index((.., .., ..self.filled, ..))?))
    }

    /// Whether the first `len` positions can be kept: the window before `len` (what the next
    /// position sees) must still be held.
    pub(crate) fn can_trim(&self, len: i32) -> bool {
        len >= self.offset() || (len >= 0 && (len - (self.window - 1)).max(0) >= self.start)
    }

    /// Keeps the first `len` positions ([`Sliding::can_trim`] said so); the rest are
    /// overwritten by the next writes.
    pub(crate) fn trim(&mut self, len: i32) {
        if len < self.offset() {
            self.filled = (len - self.start).max(0);
        }
    }

    /// Forgets everything (the buffers are reused).
    pub(crate) fn clear(&mut self) {
        self.filled = 0;
        self.start = 0;
    }

    /// The keys and values buffers (to evaluate or measure), once written.
    pub(crate) fn arrays(&self) -> [Option<&Array>; 2] {
        [self.keys.as_ref(), self.values.as_ref()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cache::tests::positions;

    /// Writes a pass of `n` tokens and returns the positions handed to attention.
    fn pass(cache: &mut Sliding, n: i32) -> Vec<i32> {
        let at = cache.offset();
        let (k, _) = cache.update(positions(at, n), positions(at, n)).unwrap();
        k.eval().unwrap();
        k.as_slice::<f32>().iter().map(|&p| p as i32).collect()
    }

    #[test]
    fn single_tokens_far_past_the_window_can_always_go_back_spare_positions() {
        let (window, spare) = (4, 5);
        let mut c = Sliding::new(window, spare);
        pass(&mut c, 9);
        for step in 0..600 {
            let held = pass(&mut c, 1);
            let offset = c.offset();
            // In temporal order, ending with the newest, the window always there.
            assert_eq!(*held.last().unwrap(), offset - 1);
            assert!(held.windows(2).all(|w| w[1] == w[0] + 1), "step {step}: {held:?}");
            // The last `window - 1 + spare` before the new one, at least.
            assert!(held.len() as i32 >= window + spare, "step {step}: {held:?}");
            assert!(c.can_trim(offset - spare), "step {step}: cannot go back {spare}");
            // Memory is bounded by the window, not the sequence.
            assert!(c.arrays()[0].unwrap().shape()[2] <= window + spare + 2 * STEP);
        }
        // Going back `spare` and on from there: the new tokens follow the kept ones.
        let offset = c.offset();
        c.trim(offset - spare);
        let held = pass(&mut c, 2);
        assert_eq!(&held[held.len() - 3..], [offset - spare - 1, offset - spare, offset - spare + 1]);
    }

    #[test]
    fn a_window_that_dropped_what_the_cut_needs_cannot_go_back_there() {
        let mut c = Sliding::new(4, 1);
        pass(&mut c, 600);
        // Nothing dropped yet: any length.
        assert!(c.can_trim(0));
        pass(&mut c, 1);
        // The 600 were compacted to the last 4 (positions 596..600) before the 601st: the
        // position after 599 sees 596..600, the one after 598 would need 595.
        assert!(c.can_trim(599) && !c.can_trim(598));
        c.clear();
        assert_eq!(c.offset(), 0);
    }
}
