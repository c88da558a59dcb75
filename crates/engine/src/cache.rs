//! Per-sequence key/value cache: one entry per layer, growing in steps like mlx-lm's `KVCache`.

use mlx_rs::{ops, Array};

use crate::error::Result;

/// Keys and values of one layer for one sequence, `[1, kv_heads, tokens, head_dim]`.
#[derive(Default)]
pub(crate) struct LayerCache {
    keys: Option<Array>,
    values: Option<Array>,
    offset: i32,
}

impl LayerCache {
    /// Tokens already cached (the RoPE offset of the next token).
    pub(crate) fn offset(&self) -> i32 {
        self.offset
    }

    /// Appends this step's keys/values and returns the whole history.
    pub(crate) fn update(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        let new = keys.shape()[2];
        let (k, v) = match (self.keys.take(), self.values.take()) {
            (Some(k), Some(v)) => (ops::concatenate(&[k, keys], 2)?, ops::concatenate(&[v, values], 2)?),
            _ => (keys, values),
        };
        self.offset += new;
        self.keys = Some(k.clone());
        self.values = Some(v.clone());
        Ok((k, v))
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
}
