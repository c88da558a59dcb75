//! Per-sequence key/value cache and the attention over it, in the forms the model families
//! use (MLX's fused kernel, or Gemma 2's soft-capped scores; a sliding window where a layer has
//! one). A full-attention layer's buffer grows in steps of 256 positions and is written in place
//! like mlx-lm's `KVCache`, so a decode step does not copy the whole history; a sliding-window
//! layer keeps mlx-lm's `RotatingKVCache` ring exactly (rotating.rs), because the order its
//! keys reach attention in changes a 16-bit model's rounding. A speculative draft's window is
//! instead kept in temporal order with a few spare positions (sliding.rs), so that it can go
//! back over rejected proposals: only the model's numbers must be mlx-lm's.

mod rotating;
mod sliding;
#[cfg(test)]
mod tests;

use mlx_rs::fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask};
use mlx_rs::ops::indexing::{TryIndexMutOp, TryIndexOp};
use mlx_rs::{ops, Array, Dtype};

use crate::error::Result;
use rotating::Rotating;
use sliding::Sliding;

/// Positions added each time the buffers grow.
const STEP: i32 = 256;

/// What one layer of one sequence carries from pass to pass: every position's keys and values
/// (full attention), a sliding window's in mlx-lm's ring order ([`Rotating`]) or, for a draft
/// model, in temporal order with room to go back ([`Sliding`]), or a linear-attention layer's
/// recurrent state.
pub(crate) struct LayerCache {
    store: Store,
}

enum Store {
    Full(Full),
    Window(Rotating),
    /// A draft model's sliding window ([`KvCache::rewindable`]).
    Rewindable(Sliding),
    /// A linear-attention layer's state (None before its first pass; it cannot go back) and
    /// the positions it has read.
    Recurrent {
        state: Option<Recurrent>,
        positions: i32,
    },
}

/// Keys and values of a full-attention layer, `[1, kv_heads, capacity, head_dim]`, grown in
/// steps and written in place; the first `filled` positions are the sequence's.
#[derive(Default)]
struct Full {
    keys: Option<Array>,
    values: Option<Array>,
    filled: i32,
}

/// What a linear-attention (gated delta) layer carries from one pass to the next: the last
/// inputs of its causal convolution `[b, kernel − 1, channels]` and its state `[b, heads,
/// v_dim, k_dim]` (float32).
#[derive(Clone)]
pub(crate) struct Recurrent {
    pub(crate) conv: Array,
    pub(crate) state: Array,
}

/// How a layer caches: all positions, a sliding window's, or a recurrent state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheKind {
    Full,
    Window(i32),
    Recurrent,
}

/// Writes `keys`/`values` at positions `filled..` of the buffers, grown in whole steps when they
/// are too short (written in place, as mlx-lm's caches do); returns the new fill.
fn write_after(
    buf_keys: &mut Option<Array>,
    buf_values: &mut Option<Array>,
    filled: i32,
    keys: &Array,
    values: &Array,
) -> Result<i32> {
    let new = keys.shape()[2];
    let capacity = buf_keys.as_ref().map_or(0, |k| k.shape()[2]);
    let end = filled + new;
    if end > capacity {
        *buf_keys = Some(grow(buf_keys.take(), keys, filled, new)?);
        *buf_values = Some(grow(buf_values.take(), values, filled, new)?);
    }
    let (k, v) = (buf_keys.as_mut().expect("allocated"), buf_values.as_mut().expect("allocated"));
    k.try_index_mut((.., .., filled..end, ..), keys)?;
    v.try_index_mut((.., .., filled..end, ..), values)?;
    Ok(end)
}

fn grow(buffer: Option<Array>, like: &Array, filled: i32, new: i32) -> Result<Array> {
    let fresh = zeros_like_steps(like, new)?;
    Ok(match buffer {
        Some(old) => {
            let old = if old.shape()[2] != filled { old.try_index((.., .., ..filled, ..))? } else { old };
            ops::concatenate(&[old, fresh], 2)?
        }
        None => fresh,
    })
}

/// Zeros for at least `positions` positions (whole steps) shaped like `like`'s heads.
fn zeros_like_steps(like: &Array, positions: i32) -> Result<Array> {
    let shape = like.shape();
    let steps = (positions + STEP - 1) / STEP;
    Ok(ops::zeros_dtype(&[shape[0], shape[1], steps * STEP, shape[3]], like.dtype())?)
}

impl Full {
    /// Writes keys/values after the history and returns every position so far.
    fn update(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        self.filled = write_after(&mut self.keys, &mut self.values, self.filled, &keys, &values)?;
        self.stored()
    }

    fn stored(&self) -> Result<(Array, Array)> {
        let (k, v) = (self.keys.as_ref().expect("stored before read"), self.values.as_ref().expect("stored"));
        Ok((k.try_index((.., .., ..self.filled, ..))?, v.try_index((.., .., ..self.filled, ..))?))
    }
}

impl LayerCache {
    /// An empty cache of this kind.
    pub(crate) fn new(kind: CacheKind) -> LayerCache {
        let store = match kind {
            CacheKind::Full => Store::Full(Full::default()),
            // Every sliding-window model mlx-lm builds pins no leading positions (`keep=0`).
            CacheKind::Window(w) => Store::Window(Rotating::new(w, 0)),
            CacheKind::Recurrent => Store::Recurrent { state: None, positions: 0 },
        };
        LayerCache { store }
    }

    /// [`LayerCache::new`], but a sliding window that can go back `spare` positions at any
    /// time, in temporal order rather than mlx-lm's ring ([`KvCache::rewindable`]).
    fn rewindable(kind: CacheKind, spare: i32) -> LayerCache {
        match kind {
            CacheKind::Window(w) => LayerCache { store: Store::Rewindable(Sliding::new(w, spare)) },
            other => LayerCache::new(other),
        }
    }

    /// A recurrent layer's carried state (None before its first pass).
    pub(crate) fn recurrent(&self) -> Option<&Recurrent> {
        match &self.store {
            Store::Recurrent { state, .. } => state.as_ref(),
            _ => None,
        }
    }

    /// Stores a recurrent layer's state after a pass of `positions` new positions.
    pub(crate) fn set_recurrent(&mut self, new: Recurrent, n: i32) {
        if let Store::Recurrent { state, positions } = &mut self.store {
            *state = Some(new);
            *positions += n;
        }
    }

    /// Tokens already cached (the RoPE offset of the next token).
    pub(crate) fn offset(&self) -> i32 {
        match &self.store {
            Store::Full(f) => f.filled,
            Store::Window(r) => r.offset(),
            Store::Rewindable(s) => s.offset(),
            Store::Recurrent { positions, .. } => *positions,
        }
    }

    /// Writes this step's keys/values after the history and returns what the step's queries
    /// attend to: every position so far, or a sliding window's as mlx-lm hands them (one
    /// query: its ring in slot order; several: the window before them and their own).
    pub(crate) fn update(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        match &mut self.store {
            Store::Full(f) => f.update(keys, values),
            Store::Window(r) => r.update(keys, values),
            Store::Rewindable(s) => s.update(keys, values),
            Store::Recurrent { .. } => unreachable!("a recurrent layer stores no keys"),
        }
    }

    /// Writes a whole new prompt's keys/values and returns what its last position attends
    /// to. A sliding window takes them as mlx-lm's `generate_step` feeds a prompt (all but the
    /// last token in one pass, then the last alone), so its ring ends in mlx-lm's slot order.
    fn update_prompt(&mut self, keys: Array, values: Array) -> Result<(Array, Array)> {
        let n = keys.shape()[2];
        if self.is_window() && n > 1 {
            self.update(keys.try_index((.., .., ..n - 1, ..))?, values.try_index((.., .., ..n - 1, ..))?)?;
            return self.update(keys.try_index((.., .., n - 1.., ..))?, values.try_index((.., .., n - 1.., ..))?);
        }
        self.update(keys, values)
    }

    /// Whether this is a sliding window's ring (whose last query attends over it).
    fn is_window(&self) -> bool {
        matches!(self.store, Store::Window(_))
    }

    /// Whether the first `len` positions can be kept (a sliding-window layer needs the window
    /// before `len` still in its buffer; a recurrent state cannot go back at all).
    fn can_trim(&self, len: i32) -> bool {
        match &self.store {
            Store::Full(_) => true,
            Store::Window(r) => r.can_trim(len),
            Store::Rewindable(s) => s.can_trim(len),
            Store::Recurrent { positions, .. } => len >= *positions,
        }
    }

    /// Forgets every position from `len` on (they are overwritten by the next writes).
    fn trim(&mut self, len: i32) -> Result<()> {
        match &mut self.store {
            Store::Full(f) => f.filled = f.filled.min(len.max(0)),
            Store::Window(r) => r.trim(len)?,
            Store::Rewindable(s) => s.trim(len),
            Store::Recurrent { .. } => {}
        }
        Ok(())
    }

    /// Forgets everything (a full layer's buffers are reused).
    fn clear(&mut self) {
        match &mut self.store {
            Store::Full(f) => f.filled = 0,
            Store::Window(r) => r.clear(),
            Store::Rewindable(s) => s.clear(),
            Store::Recurrent { state, positions } => {
                *state = None;
                *positions = 0;
            }
        }
    }

    /// Stores one row's new keys and values and returns the attention of its single query
    /// position `[1, q_heads, 1, head_dim]` over everything cached (no mask: it is the last).
    fn attend_one(&mut self, query: &Array, keys: Array, values: Array, compute: &Compute) -> Result<Array> {
        let (k, v) = self.update(keys, values)?;
        compute(query, &k, &v)
    }

    /// What this layer's queries of the last pass attended to: every position it holds, or
    /// a window's as its last update handed them (a KV-shared layer attends over the same,
    /// [`LayerCaches::attend_stored`]).
    fn stored(&self) -> Result<(Array, Array)> {
        match &self.store {
            Store::Full(f) => f.stored(),
            Store::Window(r) => r.stored(),
            Store::Rewindable(s) => s.stored(),
            Store::Recurrent { .. } => unreachable!("a recurrent layer stores no keys"),
        }
    }

    /// The arrays to evaluate so the cache is materialised (prefill chunks).
    pub(crate) fn state(&self) -> impl Iterator<Item = &Array> {
        let (kv, recurrent) = match &self.store {
            Store::Full(f) => ([f.keys.as_ref(), f.values.as_ref()], None),
            Store::Window(r) => (r.arrays(), None),
            Store::Rewindable(s) => (s.arrays(), None),
            Store::Recurrent { state, .. } => ([None, None], state.as_ref()),
        };
        kv.into_iter().flatten().chain(recurrent.into_iter().flat_map(|r| [&r.conv, &r.state]))
    }
}

/// How one layer's queries attend to its keys: MLX's fused `scaled_dot_product_attention`, or
/// (with `softcap`) Gemma 2's explicit scores `tanh(s / cap) · cap` with a precise softmax, as
/// mlx-lm computes each; with `window`, a query sees only the last `window` positions.
#[derive(Debug, Clone)]
pub(crate) struct AttentionSpec {
    /// Multiplies the scores (`head_dim^-0.5`, or a family's own).
    pub(crate) scale: f32,
    /// Soft-capping of the attention logits.
    pub(crate) softcap: Option<f32>,
    /// Sliding-window length of this layer.
    pub(crate) window: Option<i32>,
    /// Per-head attention sinks (gpt-oss): a learned logit each query also attends to.
    pub(crate) sinks: Option<Array>,
}

impl AttentionSpec {
    /// Attention of `queries` `[b, q_heads, lq, d]` (the last `lq` positions) over `keys` and
    /// `values` `[b, kv_heads, lk, d]` as a cache hands them, causal: every position so far in
    /// temporal order, or for a sliding window what mlx-lm's rotating cache hands (one query:
    /// its ring, at most `window` positions in slot order, no mask; several: the window before
    /// them and their own, in temporal order, masked as its `make_mask` does).
    pub(crate) fn compute(&self, queries: &Array, keys: &Array, values: &Array) -> Result<Array> {
        let (lq, lk) = (queries.shape()[2], keys.shape()[2]);
        let windowed = self.window.is_some_and(|w| lk > w);
        let (keys, values, lk) = match self.window {
            // A single query sees exactly the last `window` positions (keys in temporal
            // order: a draft's window holds more; mlx-lm's ring never does).
            Some(w) if windowed && lq == 1 => {
                (keys.try_index((.., .., lk - w.., ..))?, values.try_index((.., .., lk - w.., ..))?, w)
            }
            _ => (keys.clone(), values.clone(), lk),
        };
        let mask =
            if lq > 1 && (windowed || self.softcap.is_some()) { Some(causal_mask(lq, lk, self.window)?) } else { None };
        match self.softcap {
            None => {
                let mask = match &mask {
                    Some(m) => Some(ScaledDotProductAttentionMask::Array(m)),
                    None => (lq > 1).then_some(ScaledDotProductAttentionMask::Causal),
                };
                Ok(scaled_dot_product_attention(queries, &keys, &values, self.scale, mask, self.sinks.as_ref())?)
            }
            Some(cap) => softcapped(queries, &keys, &values, self.scale, cap, mask.as_ref()),
        }
    }
}

/// `[lq, lk]` booleans: query `i` (at position `lk - lq + i`) sees key `j` when `j` is not after
/// it and, with a window, within the window (mlx-lm's `create_causal_mask`).
pub(crate) fn causal_mask(lq: i32, lk: i32, window: Option<i32>) -> Result<Array> {
    let rinds = ops::arange::<_, i32>(0, lk, 1)?.reshape(&[1, lk])?;
    let linds = ops::arange::<_, i32>(lk - lq, lk, 1)?.reshape(&[lq, 1])?;
    let mut mask = linds.ge(&rinds)?;
    if let Some(w) = window {
        mask = mask.logical_and(&linds.lt(rinds.add(Array::from_int(w))?)?)?;
    }
    Ok(mask)
}

/// Gemma 2's attention: explicit scores, soft-capped, masked with the dtype's lowest value,
/// precise softmax; grouped-query heads by reshaping as mlx-lm does.
fn softcapped(q: &Array, k: &Array, v: &Array, scale: f32, cap: f32, mask: Option<&Array>) -> Result<Array> {
    let (b, heads, l, d) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let kv_heads = k.shape()[1];
    let dtype = q.dtype();
    let scalar = |x: f32| Array::from_f32(x).as_dtype(dtype);
    let mut q = q.multiply(scalar(scale)?)?;
    let (mut k, mut v) = (k.clone(), v.clone());
    let repeats = heads / kv_heads;
    if repeats > 1 {
        q = q.reshape(&[b, kv_heads, repeats, l, d])?;
        k = ops::expand_dims(&k, 2)?;
        v = ops::expand_dims(&v, 2)?;
    }
    let scores = q.matmul(k.swap_axes(-1, -2)?)?;
    let scores = ops::tanh(scores.divide(scalar(cap)?)?)?.multiply(scalar(cap)?)?;
    let scores = match mask {
        Some(m) => ops::select(m, &scores, lowest(dtype)?)?,
        None => scores,
    };
    let out = ops::softmax_axis(&scores, -1, true)?.matmul(&v)?;
    Ok(if repeats > 1 { out.reshape(&[b, heads, l, d])? } else { out })
}

/// The lowest finite value of a float dtype, as an array of it (mlx's `finfo(dtype).min`).
pub(crate) fn lowest(dtype: Dtype) -> Result<Array> {
    Ok(match dtype {
        Dtype::Float16 => Array::from_f32(half::f16::MIN.to_f32()).as_dtype(dtype)?,
        Dtype::Bfloat16 => Array::from_f32(half::bf16::MIN.to_f32()).as_dtype(dtype)?,
        _ => Array::from_f32(f32::MIN).as_dtype(dtype)?,
    })
}

/// The row of each prompt's last position in a `[b·l]` block of prompts of `lens` positions
/// padded on the right to `l`.
pub(crate) fn last_rows(lens: &[i32], l: i32) -> Array {
    let last: Vec<i32> = lens.iter().enumerate().map(|(i, n)| i as i32 * l + n - 1).collect();
    Array::from_slice(&last, &[lens.len() as i32])
}

/// Attention of queries over keys and values, both as one layer stores them.
pub(crate) type Compute<'c> = dyn Fn(&Array, &Array, &Array) -> Result<Array> + 'c;

/// Where one layer's keys and values go during a forward pass.
pub(crate) enum LayerCaches<'a> {
    /// One sequence (batch row 0), continuing from what its cache holds.
    One(&'a mut LayerCache),
    /// A batch of new prompts, one row each, all starting from empty caches: row `i` has
    /// `lens[i]` real positions (padding after them), which are written to `caches[i]`. With
    /// `last_only`, attention is computed for each row's last real position alone (the model's
    /// last layer: nothing reads the other positions' outputs).
    Fresh { caches: Vec<&'a mut LayerCache>, lens: &'a [i32], last_only: bool },
    /// One new token for each of several running sequences: row `i` continues `caches[i]`.
    Decode { caches: Vec<&'a mut LayerCache> },
}

impl LayerCaches<'_> {
    /// In a fresh pass's last layer, the rows of a `[b·l]` block attention returns (each
    /// prompt's last position); None when it returns every row.
    pub(crate) fn kept_rows(&self, l: i32) -> Option<Array> {
        match self {
            LayerCaches::Fresh { lens, last_only: true, .. } => Some(last_rows(lens, l)),
            _ => None,
        }
    }

    /// Stores this pass's keys and values `[batch, kv_heads, len, head_dim]` and returns the
    /// attention output `[batch, q_heads, len, head_dim]` of `queries` over each row's keys and
    /// values: with its history for one sequence, the pass's own for a fresh batch (whose causal
    /// mask keeps every real position away from the padding; only each row's last position, over
    /// its own cache, with `last_only`), each row over its own history for a decode batch.
    pub(crate) fn attend(
        &mut self,
        queries: &Array,
        keys: Array,
        values: Array,
        spec: &AttentionSpec,
    ) -> Result<Array> {
        self.attend_with(queries, keys, values, &|q, k, v| spec.compute(q, k, v))
    }

    /// [`LayerCaches::attend`] with the attention of queries `[b, heads, lq, ·]` (the last `lq`
    /// positions) over every position's keys and values `[b, ·, lk, ·]` computed by `compute`
    /// (latent attention caches other tensors than keys and values: latent.rs).
    pub(crate) fn attend_with(
        &mut self,
        queries: &Array,
        keys: Array,
        values: Array,
        compute: &Compute,
    ) -> Result<Array> {
        match self {
            LayerCaches::One(c) => {
                let (k, v) = c.update(keys, values)?;
                compute(queries, &k, &v)
            }
            LayerCaches::Fresh { caches, lens, last_only } => {
                // Each prompt's last position, over what its cache hands it (mlx-lm runs it
                // alone): in the last layer the only output, elsewhere a sliding window's
                // replaces the batch's (whose keys are in temporal order, the ring's not).
                let mut lasts = Vec::new();
                for (i, (cache, &len)) in caches.iter_mut().zip(lens.iter()).enumerate() {
                    let row = i as i32;
                    let k = keys.try_index((row..row + 1, .., ..len, ..))?;
                    let v = values.try_index((row..row + 1, .., ..len, ..))?;
                    let (k, v) = cache.update_prompt(k, v)?;
                    if *last_only || cache.is_window() {
                        let q = queries.try_index((row..row + 1, .., len - 1..len, ..))?;
                        lasts.push((row, len, compute(&q, &k, &v)?));
                    }
                }
                if *last_only {
                    let rows: Vec<Array> = lasts.into_iter().map(|(_, _, o)| o).collect();
                    return Ok(ops::concatenate(&rows, 0)?);
                }
                let mut out = compute(queries, &keys, &values)?;
                for (row, len, o) in lasts {
                    out.try_index_mut((row..row + 1, .., len - 1..len, ..), &o)?;
                }
                Ok(out)
            }
            LayerCaches::Decode { caches } => {
                let rows = caches
                    .iter_mut()
                    .enumerate()
                    .map(|(i, cache)| {
                        let row = i as i32..i as i32 + 1;
                        let k = keys.try_index((row.clone(), .., .., ..))?;
                        let v = values.try_index((row.clone(), .., .., ..))?;
                        cache.attend_one(&queries.try_index((row, .., .., ..))?, k, v, compute)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ops::concatenate(&rows, 0)?)
            }
        }
    }
}

impl LayerCaches<'_> {
    /// Attention of another layer's `queries` over what this layer stored in the pass just
    /// run (Gemma 4's KV-shared layers), writing nothing: exactly the keys and values this
    /// layer's own queries attended to — `pass_kv`, the pass's own, for a fresh batch; each
    /// row's cache otherwise (and for the last positions alone, with `last_only`).
    pub(crate) fn attend_stored(
        &mut self,
        queries: &Array,
        pass_kv: &(Array, Array),
        spec: &AttentionSpec,
    ) -> Result<Array> {
        let over_cache = |cache: &LayerCache, q: &Array| -> Result<Array> {
            let (k, v) = cache.stored()?;
            spec.compute(q, &k, &v)
        };
        match self {
            LayerCaches::One(c) => over_cache(c, queries),
            LayerCaches::Fresh { caches, lens, last_only: true } => {
                let rows = caches
                    .iter()
                    .zip(lens.iter())
                    .enumerate()
                    .map(|(i, (cache, &len))| {
                        let row = i as i32;
                        over_cache(cache, &queries.try_index((row..row + 1, .., len - 1..len, ..))?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ops::concatenate(&rows, 0)?)
            }
            LayerCaches::Fresh { caches, lens, last_only: false } => {
                // A sliding window's last positions attended over its ring (`attend_with`).
                let mut out = spec.compute(queries, &pass_kv.0, &pass_kv.1)?;
                for (i, (cache, &len)) in caches.iter().zip(lens.iter()).enumerate() {
                    if cache.is_window() {
                        let rows = (i as i32..i as i32 + 1, .., len - 1..len, ..);
                        let o = over_cache(cache, &queries.try_index(rows.clone())?)?;
                        out.try_index_mut(rows, &o)?;
                    }
                }
                Ok(out)
            }
            LayerCaches::Decode { caches } => {
                let rows = caches
                    .iter()
                    .enumerate()
                    .map(|(i, cache)| over_cache(cache, &queries.try_index((i as i32..i as i32 + 1, .., .., ..))?))
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
    /// One layer cache of each kind.
    pub(crate) fn new(kinds: &[CacheKind]) -> KvCache {
        KvCache { layers: kinds.iter().map(|k| LayerCache::new(*k)).collect() }
    }

    /// A speculative draft's cache: like [`KvCache::new`], but each sliding window is kept in
    /// temporal order with `spare` positions beyond it ([`Sliding`]), so [`KvCache::trim`] can
    /// always go back `spare` positions. Its numbers are not mlx-lm's ring's (a 16-bit model
    /// rounds differently now and then), which only changes which proposals are accepted.
    pub(crate) fn rewindable(kinds: &[CacheKind], spare: i32) -> KvCache {
        KvCache { layers: kinds.iter().map(|k| LayerCache::rewindable(*k, spare)).collect() }
    }

    /// Keeps the first `len` positions of every layer and returns `len`; when a layer can no
    /// longer go back that far (a sliding window already dropped what the positions after
    /// `len` would see), keeps nothing and returns 0 (the prompt is recomputed).
    pub(crate) fn trim(&mut self, len: i32) -> i32 {
        if self.layers.iter().all(|l| l.can_trim(len)) && self.layers.iter_mut().all(|l| l.trim(len).is_ok()) {
            return len;
        }
        self.layers.iter_mut().for_each(LayerCache::clear);
        0
    }

    /// Bytes the key/value buffers hold (their allocated capacity, not just the filled part).
    pub(crate) fn nbytes(&self) -> usize {
        self.layers.iter().flat_map(|l| l.state()).map(|a| a.nbytes()).sum()
    }
}
