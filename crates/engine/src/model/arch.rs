//! The seam between the engine and the model families.
//!
//! The engine (batching, the prompt cache, the pool) only ever holds a [`super::Model`], which
//! runs an [`Architecture`] over a [`Pass`]: which rows and positions this forward pass computes
//! and where each row's keys and values live. A family never sees how requests were batched, and
//! the batching never names a family.

use mlx_rs::{Array, Dtype};

use super::blas::PassShape;
use crate::cache::{last_rows, CacheKind, KvCache, LayerCache, LayerCaches};
use crate::error::Result;

/// One model family's forward pass, built by its module in `model/` (see `registry.rs`).
pub(crate) trait Architecture {
    /// Hidden states after the last block, before the final norm, `[rows, hidden]`, for the
    /// pass's token ids (1-D, row after row). In a [`Pass::fresh`] pass the last block keeps
    /// only each prompt's last position (`Pass::layer`'s `keep`).
    fn forward(&self, ids: &Array, pass: &mut Pass<'_, '_>) -> Result<Array>;
    /// The final norm.
    fn final_norm(&self, h: &Array) -> Result<Array>;
    /// Logits of normed hidden states `[rows, hidden]` → `[rows, vocab]`.
    fn logits(&self, h: &Array) -> Result<Array>;
    /// Every weight array, to read them into memory at load.
    fn arrays(&self) -> Vec<&Array>;
    /// Bytes the weights hold.
    fn weight_bytes(&self) -> usize;
    /// The widths OpenBLAS's thread count is decided from.
    fn pass_shape(&self) -> PassShape;
    /// How each block caches (one entry each).
    fn cache_kinds(&self) -> Vec<CacheKind>;
    /// The dtype activations run in.
    fn dtype(&self) -> Dtype;
}

/// The positions a pass computes.
pub(crate) enum Positions<'p> {
    /// Every row from this position on, `len` positions each.
    From { offset: i32, len: i32 },
    /// One position per row.
    Rows(&'p [i32]),
}

enum Kind<'a, 'b> {
    One(&'a mut KvCache),
    Fresh { caches: &'a mut [&'b mut KvCache], lens: Vec<i32>, last: Array },
    Decode { caches: &'a mut [&'b mut KvCache], positions: Vec<i32> },
}

/// One forward pass: `rows` = (batch rows, positions per row), and the caches they continue.
pub(crate) struct Pass<'a, 'b> {
    /// (batch rows, positions per row).
    pub(crate) rows: (i32, i32),
    kind: Kind<'a, 'b>,
}

impl<'a, 'b> Pass<'a, 'b> {
    /// `b` rows of `l` positions continuing one cache (one sequence, or a batch sharing a cache
    /// as embeddings use it).
    pub(crate) fn one(cache: &'a mut KvCache, b: i32, l: i32) -> Pass<'a, 'b> {
        Pass { rows: (b, l), kind: Kind::One(cache) }
    }

    /// New prompts, one row each, padded on the right to `l`, each into its own empty cache.
    pub(crate) fn fresh(caches: &'a mut [&'b mut KvCache], lens: Vec<i32>, l: i32) -> Pass<'a, 'b> {
        let last = last_rows(&lens, l);
        Pass { rows: (lens.len() as i32, l), kind: Kind::Fresh { caches, lens, last } }
    }

    /// One new token for each running sequence.
    pub(crate) fn decode(caches: &'a mut [&'b mut KvCache]) -> Pass<'a, 'b> {
        let positions: Vec<i32> = caches.iter().map(|c| c.layers.first().map_or(0, LayerCache::offset)).collect();
        Pass { rows: (positions.len() as i32, 1), kind: Kind::Decode { caches, positions } }
    }

    /// The positions this pass computes (for RoPE).
    pub(crate) fn positions(&self) -> Positions<'_> {
        match &self.kind {
            Kind::One(cache) => {
                Positions::From { offset: cache.layers.first().map_or(0, LayerCache::offset), len: self.rows.1 }
            }
            Kind::Fresh { .. } => Positions::From { offset: 0, len: self.rows.1 },
            Kind::Decode { positions, .. } => Positions::Rows(positions),
        }
    }

    /// Positions computed and the longest context any of them attends to (OpenBLAS's threads).
    pub(crate) fn work(&self) -> (usize, usize) {
        let (b, l) = self.rows;
        let context = match self.positions() {
            Positions::From { offset, len } => offset + len,
            Positions::Rows(p) => p.iter().max().map_or(1, |p| p + 1),
        };
        ((b * l) as usize, context as usize)
    }

    /// Block `j`'s caches, and in a fresh pass's last block the rows of the residual stream
    /// to carry on (each prompt's last position: nothing reads the others).
    pub(crate) fn layer(&mut self, j: usize) -> (LayerCaches<'_>, Option<Array>) {
        self.layer_reading(j, j)
    }

    /// [`Pass::layer`] for block `j` over block `src`'s caches (a KV-shared block reads what
    /// an earlier one stored: `LayerCaches::attend_stored`).
    pub(crate) fn layer_reading(&mut self, j: usize, src: usize) -> (LayerCaches<'_>, Option<Array>) {
        match &mut self.kind {
            Kind::One(cache) => (LayerCaches::One(&mut cache.layers[src]), None),
            Kind::Fresh { caches, lens, last } => {
                let last_only = j + 1 == caches.first().map_or(0, |c| c.layers.len());
                let layer = caches.iter_mut().map(|c| &mut c.layers[src]).collect();
                (LayerCaches::Fresh { caches: layer, lens, last_only }, last_only.then(|| last.clone()))
            }
            Kind::Decode { caches, .. } => {
                (LayerCaches::Decode { caches: caches.iter_mut().map(|c| &mut c.layers[src]).collect() }, None)
            }
        }
    }
}
