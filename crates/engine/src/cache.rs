//! Per-sequence key/value cache, grown in steps of 256 positions and written in place like
//! mlx-lm's `KVCache`, so a decode step does not copy the whole history.

use mlx_rs::ops::indexing::{TryIndexMutOp, TryIndexOp};
use mlx_rs::{ops, Array};

use crate::error::Result;

/// Positions added each time the buffers grow.
const STEP: i32 = 256;

/// Keys and values of one layer for one sequence, `[1, kv_heads, capacity, head_dim]`; the first
/// `offset` positions are filled.
#[derive(Default)]
pub(crate) struct LayerCache {
    keys: Option<Array>,
    values: Option<Array>,
    offset: i32,
}

fn grow(buffer: Option<Array>, like: &Array, offset: i32, new: i32) -> Result<Array> {
    let shape = like.shape();
    let steps = (new + STEP - 1) / STEP;
    let fresh = ops::zeros_dtype(&[shape[0], shape[1], steps * STEP, shape[3]], like.dtype())?;
    Ok(match buffer {
        Some(old) => {
            let old = if old.shape()[2] != offset { old.try_index((.., .., ..offset, ..))? } else { old };
            ops::concatenate(&[old, fresh], 2)?
        }
        None => fresh,
    })
}

impl LayerCache {
    /// Tokens already cached (the RoPE offset of the next token).
    pub(crate) fn offset(&self) -> i32 {
        self.offset
    }

    /// Writes this step's keys/values after the history and returns the filled part.
    pub(crate) fn update(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        let new = keys.shape()[2];
        let (start, end) = (self.offset, self.offset + new);
        let capacity = self.keys.as_ref().map_or(0, |k| k.shape()[2]);
        if end > capacity {
            self.keys = Some(grow(self.keys.take(), &keys, start, new)?);
            self.values = Some(grow(self.values.take(), &values, start, new)?);
        }
        let (k, v) = (self.keys.as_mut().expect("allocated"), self.values.as_mut().expect("allocated"));
        k.try_index_mut((.., .., start..end, ..), &keys)?;
        v.try_index_mut((.., .., start..end, ..), &values)?;
        self.offset = end;
        Ok((k.try_index((.., .., ..end, ..))?, v.try_index((.., .., ..end, ..))?))
    }

    /// Forgets every position from `len` on (they are overwritten by the next writes).
    pub(crate) fn trim(&mut self, len: i32) {
        self.offset = self.offset.min(len);
    }

    /// The arrays to evaluate so the cache is materialised (prefill chunks).
    pub(crate) fn state(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }
}

/// The cache of a whole sequence.
pub(crate) struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
}

impl KvCache {
    pub(crate) fn new(num_layers: usize) -> KvCache {
        KvCache { layers: (0..num_layers).map(|_| LayerCache::default()).collect() }
    }

    /// Keeps the first `len` positions of every layer.
    pub(crate) fn trim(&mut self, len: i32) {
        for l in &mut self.layers {
            l.trim(len);
        }
    }

    /// Bytes the key/value buffers hold (their allocated capacity, not just the filled part).
    pub(crate) fn nbytes(&self) -> usize {
        self.layers.iter().flat_map(|l| l.state()).map(|a| a.nbytes()).sum()
    }
}
