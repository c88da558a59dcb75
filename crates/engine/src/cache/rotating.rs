//! A sliding-window layer's keys and values, kept exactly as mlx-lm's `RotatingKVCache`
//! (mlx_lm/models/cache.py) keeps them: a ring buffer of `max_size` slots written one token at a
//! time, and a plain concatenation (in temporal order, trimmed to the window) for a pass of
//! several tokens. The order matters, not only the set: a single query attends over the buffer
//! in slot order, and a softmax and a matrix product summed in another order round differently,
//! enough to flip a 16-bit model's greedy token now and then. So every step below is mlx-lm's.

use mlx_rs::ops::indexing::{TryIndexMutOp, TryIndexOp};
use mlx_rs::{ops, Array};

use crate::error::Result;

/// Slots added each time the buffer grows (mlx-lm's `step`), up to `max_size`.
const STEP: i32 = 256;

/// Keys and values `[1, kv_heads, slots, head_dim]` of one sliding-window layer: the last
/// `max_size` positions (the first `keep` pinned), in mlx-lm's slot order.
pub(crate) struct Rotating {
    keys: Option<Array>,
    values: Option<Array>,
    /// Positions written so far (the RoPE offset of the next).
    offset: i32,
    /// The slot the next single token goes to (before wrapping); after a multi-token pass, the
    /// buffer's length, whose positions are then in temporal order.
    idx: i32,
    /// The window: how many positions a single query sees.
    max_size: i32,
    /// Leading positions never overwritten (0 for every model mlx-lm builds; its
    /// `max_kv_size` option pins 4).
    keep: i32,
}

/// `buffer`'s positions along the sequence axis from `from` to `to`.
fn slice(buffer: &Array, from: i32, to: i32) -> Result<Array> {
    Ok(buffer.try_index((.., .., from..to, ..))?)
}

/// `from..` of `buffer` along the sequence axis.
fn tail(buffer: &Array, from: i32) -> Result<Array> {
    Ok(buffer.try_index((.., .., from.., ..))?)
}

impl Rotating {
    /// An empty window of `max_size` positions, `keep` of them pinned.
    pub(crate) fn new(max_size: i32, keep: i32) -> Rotating {
        Rotating { keys: None, values: None, offset: 0, idx: 0, max_size, keep }
    }

    /// Positions written so far.
    pub(crate) fn offset(&self) -> i32 {
        self.offset
    }

    /// Writes a pass's keys and values `[1, kv_heads, n, head_dim]` and returns what its
    /// queries attend over, as mlx-lm's `update_and_fetch`: for one token the whole buffer in
    /// slot order; for several the window before them and their own, in temporal order.
    pub(crate) fn update(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        if keys.shape()[2] == 1 {
            self.update_in_place(keys, values)
        } else {
            self.update_concat(keys, values)
        }
    }

    /// mlx-lm's `_trim`: drops `trim` positions after the first `keep`, appends `append`.
    fn trim_front(&self, trim: i32, v: &Array, append: Option<&Array>) -> Result<Array> {
        let mut parts =
            if trim > 0 { vec![slice(v, 0, self.keep)?, tail(v, trim + self.keep)?] } else { vec![v.clone()] };
        parts.extend(append.cloned());
        Ok(if parts.len() == 1 { parts.pop().expect("one") } else { ops::concatenate(&parts, 2)? })
    }

    /// mlx-lm's `_temporal_order`: the buffer rearranged into temporal order, its unused end
    /// sliced off.
    fn temporal_order(&self, v: &Array) -> Result<Array> {
        let len = v.shape()[2];
        Ok(if self.idx == len {
            v.clone()
        } else if self.idx < self.offset {
            ops::concatenate(&[slice(v, 0, self.keep)?, tail(v, self.idx)?, slice(v, self.keep, self.idx)?], 2)?
        } else {
            slice(v, 0, self.idx)?
        })
    }

    /// Several tokens: the history in temporal order, trimmed to the last `max_size - 1`
    /// positions (each new query still sees a whole window), then the new ones.
    fn update_concat(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        let n = keys.shape()[2];
        let (k, v) = match (self.keys.take(), self.values.take()) {
            (Some(old_k), Some(old_v)) => {
                let (old_k, old_v) = (self.temporal_order(&old_k)?, self.temporal_order(&old_v)?);
                self.idx = old_k.shape()[2];
                let trim = self.idx - self.max_size + 1;
                (self.trim_front(trim, &old_k, Some(&keys))?, self.trim_front(trim, &old_v, Some(&values))?)
            }
            _ => (keys, values),
        };
        self.offset += n;
        self.idx = k.shape()[2];
        self.keys = Some(k.clone());
        self.values = Some(v.clone());
        Ok((k, v))
    }

    /// One token, written in place: the buffer grows (in steps) up to `max_size`, a longer one
    /// left by a multi-token pass is trimmed to it, and once full the writes wrap around to
    /// slot `keep`.
    fn update_in_place(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        let prev = self.offset;
        let len = self.keys.as_ref().map_or(0, |k| k.shape()[2]);
        if self.keys.is_none() || (prev >= len && len < self.max_size) {
            let grow = STEP.min(self.max_size - prev);
            let zeros = |like: &Array| -> Result<Array> {
                let s = like.shape();
                Ok(ops::zeros_dtype(&[s[0], s[1], grow, s[3]], like.dtype())?)
            };
            let (new_k, new_v) = (zeros(&keys)?, zeros(&values)?);
            let grown = |old: Option<Array>, new: Array| -> Result<Array> {
                Ok(match old {
                    Some(old) => ops::concatenate(&[old, new], 2)?,
                    None => new,
                })
            };
            self.keys = Some(grown(self.keys.take(), new_k)?);
            self.values = Some(grown(self.values.take(), new_v)?);
            self.idx = prev;
        }
        let (k, v) = (self.keys.take().expect("allocated"), self.values.take().expect("allocated"));
        let trim = k.shape()[2] - self.max_size;
        let (mut k, mut v) = if trim > 0 {
            self.idx = self.max_size;
            (self.trim_front(trim, &k, None)?, self.trim_front(trim, &v, None)?)
        } else {
            (k, v)
        };
        if self.idx == self.max_size {
            self.idx = self.keep;
        }
        let slot = self.idx..self.idx + 1;
        k.try_index_mut((.., .., slot.clone(), ..), &keys)?;
        v.try_index_mut((.., .., slot, ..), &values)?;
        self.offset += 1;
        self.idx += 1;
        self.keys = Some(k);
        self.values = Some(v);
        self.stored()
    }

    /// What the last pass's queries attended over (mlx-lm's `keys_and_values`; a multi-token
    /// pass's buffer is exactly that): the filled part of the buffer, in slot order.
    pub(crate) fn stored(&self) -> Result<(Array, Array)> {
        let (k, v) = (self.keys.as_ref().expect("stored before read"), self.values.as_ref().expect("stored"));
        Ok(if self.offset < k.shape()[2] {
            (slice(k, 0, self.offset)?, slice(v, 0, self.offset)?)
        } else {
            (k.clone(), v.clone())
        })
    }

    /// How many of the last positions the buffer holds (besides the first `keep`).
    fn held(&self) -> i32 {
        self.keys.as_ref().map_or(0, |k| k.shape()[2]).min(self.offset)
    }

    /// Whether the first `len` positions can be kept and the sequence go on from there: the
    /// next token's window (the `max_size` positions before `len`) must still be held. mlx-lm
    /// itself trims only a window that has not dropped anything (`is_trimmable`).
    pub(crate) fn can_trim(&self, len: i32) -> bool {
        if len >= self.offset {
            return true;
        }
        let first_held = self.offset - self.held();
        if self.keep > 0 {
            return first_held == 0 && len >= 0;
        }
        len >= 0 && (len - self.max_size).max(0) >= first_held
    }

    /// Keeps the first `len` positions ([`Rotating::can_trim`] said so): the buffer is put in
    /// temporal order and cut after `len`, keeping the window before it, as a multi-token
    /// pass leaves it (so the next single token trims, rotates and writes as mlx-lm's would).
    pub(crate) fn trim(&mut self, len: i32) -> Result<()> {
        if len >= self.offset {
            return Ok(());
        }
        let (Some(k), Some(v)) = (self.keys.take(), self.values.take()) else { return Ok(()) };
        let (k, v) = (self.temporal_order(&k)?, self.temporal_order(&v)?);
        // The temporal buffer holds positions `offset - held .. offset`.
        let first = self.offset - k.shape()[2].min(self.offset);
        let from = (len - self.max_size).max(0).max(first) - first;
        let to = len - first;
        // With pinned positions nothing was dropped (`can_trim`): keep them all.
        let from = if self.keep > 0 { 0 } else { from };
        let (k, v) = (slice(&k, from, to)?, slice(&v, from, to)?);
        self.idx = k.shape()[2];
        self.offset = len;
        self.keys = Some(k);
        self.values = Some(v);
        Ok(())
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        *self = Rotating::new(self.max_size, self.keep);
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

    /// Feeds passes of `sizes` tokens and returns, for each, the positions its queries
    /// attended over, in the order handed to attention.
    fn orders(cache: &mut Rotating, sizes: &[i32]) -> Vec<Vec<i32>> {
        sizes
            .iter()
            .map(|&n| {
                let at = cache.offset();
                let (k, _) = cache.update(positions(at, n), positions(at, n)).unwrap();
                k.eval().unwrap();
                k.as_slice::<f32>().iter().map(|&p| p as i32).collect()
            })
            .collect()
    }

    #[test]
    fn single_tokens_fill_then_wrap_to_the_first_slot() {
        let mut c = Rotating::new(4, 0);
        let o = orders(&mut c, &[1, 1, 1, 1, 1, 1]);
        assert_eq!(o[3], [0, 1, 2, 3]);
        assert_eq!(o[4], [4, 1, 2, 3]);
        assert_eq!(o[5], [4, 5, 2, 3]);
    }

    #[test]
    fn a_prompt_longer_than_the_window_then_its_last_token_alone() {
        // mlx-lm's generate_step: all but the last prompt token in one pass, then the last.
        let mut c = Rotating::new(4, 0);
        let o = orders(&mut c, &[9, 1, 1]);
        assert_eq!(o[0], (0..9).collect::<Vec<_>>());
        // Trimmed to the last 4 (positions 5..9), rotated to slot 0: the newest comes first.
        assert_eq!(o[1], [9, 6, 7, 8]);
        assert_eq!(o[2], [9, 10, 7, 8]);
    }

    #[test]
    fn several_tokens_after_wrapping_see_the_window_in_temporal_order() {
        let mut c = Rotating::new(4, 0);
        let o = orders(&mut c, &[1, 1, 1, 1, 1, 1, 3, 1]);
        assert_eq!(o[5], [4, 5, 2, 3]);
        // _temporal_order, then the last max_size - 1 before the new three.
        assert_eq!(o[6], [3, 4, 5, 6, 7, 8]);
        assert_eq!(o[7], [9, 6, 7, 8]);
    }

    #[test]
    fn pinned_leading_positions_stay_when_the_ring_wraps() {
        let mut c = Rotating::new(5, 2);
        let o = orders(&mut c, &[3, 1, 1, 1, 1, 1]);
        assert_eq!(o[2], [0, 1, 2, 3, 4]);
        assert_eq!(o[3], [0, 1, 5, 3, 4]);
        assert_eq!(o[5], [0, 1, 5, 6, 7]);
        let mut c = Rotating::new(5, 2);
        let o = orders(&mut c, &[8, 1]);
        // The first two, then the last three of 0..8, then 8 overwrites slot 2.
        assert_eq!(o[1], [0, 1, 8, 6, 7]);
    }

    #[test]
    fn the_buffer_grows_in_steps_up_to_the_window_only() {
        let mut c = Rotating::new(300, 0);
        orders(&mut c, &[1; 3]);
        assert_eq!(c.keys.as_ref().unwrap().shape()[2], 256);
        orders(&mut c, &[1; 300]);
        assert_eq!(c.keys.as_ref().unwrap().shape()[2], 300);
    }

    #[test]
    fn trimming_keeps_the_window_before_the_cut_and_goes_on_as_from_a_pass() {
        let mut c = Rotating::new(4, 0);
        orders(&mut c, &[1; 10]);
        // Holds 6..10: going back to 9 needs 5..9, gone; to 10 is nothing.
        assert!(!c.can_trim(9) && c.can_trim(10));
        let mut c = Rotating::new(4, 0);
        // Holds 7..13 in temporal order after the three.
        orders(&mut c, &[9, 1, 3]);
        assert!(c.can_trim(11) && !c.can_trim(10));
        c.trim(11).unwrap();
        assert_eq!(c.offset(), 11);
        let o = orders(&mut c, &[1, 2]);
        assert_eq!(o[0], [11, 8, 9, 10]);
        assert_eq!(o[1], [9, 10, 11, 12, 13]);
        // Nothing dropped yet: any length, and the buffer grows again from there.
        let mut c = Rotating::new(8, 0);
        orders(&mut c, &[5]);
        assert!(c.can_trim(0) && c.can_trim(2));
        c.trim(2).unwrap();
        assert_eq!(orders(&mut c, &[1])[0], [0, 1, 2]);
    }
}
