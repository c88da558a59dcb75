//! Per-sequence key/value cache, grown in steps of 256 positions and written in place like
//! mlx-lm's `KVCache`, so a decode step does not copy the whole history.

use mlx_rs::fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask};
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

    /// Stores one row's new keys and values and returns the attention of its single query
    /// position `[1, q_heads, 1, head_dim]` over everything cached (no mask: it is the last).
    fn attend_one(&mut self, query: &Array, keys: Array, values: Array, scale: f32) -> Result<Array> {
        let (k, v) = self.update(keys, values)?;
        Ok(scaled_dot_product_attention(query, &k, &v, scale, None, None)?)
    }

    /// The arrays to evaluate so the cache is materialised (prefill chunks).
    pub(crate) fn state(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }
}

/// Where one layer's keys and values go during a forward pass.
pub(crate) enum LayerCaches<'a, 'b> {
    /// One sequence (batch row 0), continuing from what its cache holds.
    One(&'a mut LayerCache),
    /// A batch of new prompts, one row each, all starting from empty caches: row `i` has
    /// `lens[i]` real positions (padding after them), which are written to `caches[i]`. With
    /// `last_only`, attention is computed for each row's last real position alone (the model's
    /// last layer: nothing reads the other positions' outputs).
    Fresh { caches: &'a mut [&'b mut LayerCache], lens: &'a [i32], last_only: bool },
    /// One new token for each of several running sequences: row `i` continues `caches[i]`.
    Decode { caches: &'a mut [&'b mut LayerCache] },
}

impl LayerCaches<'_, '_> {
    /// Stores this pass's keys and values `[batch, kv_heads, len, head_dim]` and returns the
    /// attention output `[batch, q_heads, len, head_dim]` of `queries` over each row's keys and
    /// values: with its history for one sequence, the pass's own for a fresh batch (whose causal
    /// mask keeps every real position away from the padding; only each row's last position, over
    /// its own cache, with `last_only`), each row over its own history for a decode batch.
    pub(crate) fn attend(&mut self, queries: &Array, keys: Array, values: Array, scale: f32) -> Result<Array> {
        let causal = (queries.shape()[2] > 1).then_some(ScaledDotProductAttentionMask::Causal);
        match self {
            LayerCaches::One(c) => {
                let (k, v) = c.update(keys, values)?;
                Ok(scaled_dot_product_attention(queries, &k, &v, scale, causal, None)?)
            }
            LayerCaches::Fresh { caches, lens, last_only } => {
                let mut rows = Vec::new();
                for (i, (cache, &len)) in caches.iter_mut().zip(lens.iter()).enumerate() {
                    let row = i as i32;
                    let k = keys.try_index((row..row + 1, .., ..len, ..))?;
                    let v = values.try_index((row..row + 1, .., ..len, ..))?;
                    if *last_only {
                        let q = queries.try_index((row..row + 1, .., len - 1..len, ..))?;
                        rows.push(cache.attend_one(&q, k, v, scale)?);
                    } else {
                        cache.update(k, v)?;
                    }
                }
                if *last_only {
                    return Ok(ops::concatenate(&rows, 0)?);
                }
                Ok(scaled_dot_product_attention(queries, &keys, &values, scale, causal, None)?)
            }
            LayerCaches::Decode { caches } => {
                let rows = caches
                    .iter_mut()
                    .enumerate()
                    .map(|(i, cache)| {
                        let row = i as i32..i as i32 + 1;
                        let k = keys.try_index((row.clone(), .., .., ..))?;
                        let v = values.try_index((row.clone(), .., .., ..))?;
                        cache.attend_one(&queries.try_index((row, .., .., ..))?, k, v, scale)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ops::concatenate(&rows, 0)?)
            }
        }
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
