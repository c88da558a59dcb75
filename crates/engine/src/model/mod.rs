//! The models: the engine-facing [`Model`], which runs any family's [`arch::Architecture`]
//! over a [`arch::Pass`], the registry from `model_type` to family (registry.rs), one module
//! per family (llama.rs, qwen2.rs, qwen3.rs, phi3.rs, gemma2.rs, gemma3.rs) and the blocks
//! they are built from (attention.rs, mlp.rs, layers.rs, rope.rs, decoder.rs). Each family
//! mirrors mlx-lm's graph for it, so greedy outputs are token-identical; on the CPU a few
//! operations take a cheaper form with the same values (rope.rs) or values within a few ulp
//! (activation.rs).

mod activation;
mod arch;
mod args;
mod attention;
mod blas;
mod decoder;
mod deepseek_v2;
mod deepseek_v3;
mod gated_delta;
mod gemma2;
mod gemma3;
mod gemma4;
mod gpt_oss;
mod latent;
mod layers;
mod llama;
mod mixtral;
mod mlp;
mod moe;
mod phi3;
mod qwen2;
mod qwen3;
mod qwen3_5;
mod qwen3_moe;
mod qwen3_next;
mod registry;
mod rope;
mod weights;

use std::path::Path;

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{ops, Array, Dtype};

use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::error::Result;
use arch::{Architecture, Pass};
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use blas::symbol as blas_symbol;
use blas::PassShape;
pub use registry::{family_names, supported_model_types};
pub(crate) use weights::weight_files;
pub use weights::Wanted;
use weights::WeightSet;

/// Whether the engine computes on the CPU (its default device), where some operations take a
/// cheaper form (rope.rs, activation.rs).
pub(crate) fn on_cpu() -> Result<bool> {
    Ok(matches!(mlx_rs::Device::default().get_type()?, mlx_rs::DeviceType::Cpu))
}

/// The registry name of the family that builds `model_type`, if any.
pub(crate) fn family_of(model_type: &str) -> Option<&'static str> {
    registry::family(model_type).map(|f| f.name)
}

/// A family's defaults for a nested `text_config` (JSON object), by registry name.
pub(crate) fn nested_defaults(family: &str) -> serde_json::Map<String, serde_json::Value> {
    registry::family(family).and_then(|f| serde_json::from_str(f.nested_defaults).ok()).unwrap_or_default()
}

/// A family's own config fields for a tiny model (JSON), by registry name.
pub(crate) fn tiny_fields(family: &str) -> Option<&'static str> {
    registry::family(family).map(|f| f.tiny)
}

/// Every tensor the family of `config` reads, in order, found by building it against a
/// recording weight set (lazy zeros; nothing is evaluated but RoPE tables): the layout
/// make-tiny-model writes, exactly what the loader expects.
pub(crate) fn tensor_layout(config: &ModelConfig) -> Result<Vec<Wanted>> {
    let family = registry::family(config.family).expect("a parsed config names a registered family");
    let args = family.args(config)?;
    let record = weights::Record::default();
    (family.build)(config, &args, WeightSet::recording(record.clone()), &mut |_| {})?;
    Ok(record.take())
}

/// Checks a config completely before any weight is read: the shared fields, then everything
/// the family's builder checks (experts, windows, rotary dimensions …), by building it against a
/// recording weight set (called when the config is read, on the engine thread).
pub(crate) fn check_args(config: &ModelConfig) -> Result<()> {
    tensor_layout(config).map(drop)
}

/// Token sequences padded on the right with id 0 to the longest, row after row, and that length.
fn padded(seqs: &[&[u32]]) -> (Vec<u32>, usize) {
    let l = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    let ids = seqs.iter().flat_map(|s| s.iter().copied().chain(std::iter::repeat_n(0, l - s.len()))).collect();
    (ids, l)
}

/// A loaded model: weights on the engine thread's device, ready to run.
pub struct Model {
    /// The validated config.
    pub config: ModelConfig,
    arch: Box<dyn Architecture>,
    /// For OpenBLAS's thread count per pass.
    pass: PassShape,
    weight_bytes: usize,
}

impl Model {
    /// Loads and validates the weights in `dir` for `config`, and evaluates them (so a bad file
    /// fails here, not in the middle of a request).
    pub fn load(dir: &Path, config: ModelConfig) -> Result<Model> {
        Model::load_with_progress(dir, config, false, &mut |_| {})
    }

    /// [`Model::load`], reporting how far it got (0 … 1) after each stage: weight files checked,
    /// each layer built, then the weights read into memory. With `dense`, quantized weights are
    /// dequantized once here and run as dense ones (see `PoolConfig::dense_on_cpu`).
    pub fn load_with_progress(
        dir: &Path,
        config: ModelConfig,
        dense: bool,
        progress: &mut dyn FnMut(f32),
    ) -> Result<Model> {
        let family = registry::family(config.family).expect("a parsed config names a registered family");
        let args = family.args(&config)?;
        let w = WeightSet::load(dir)?.with_overrides(&config.args)?.expanding(dense);
        progress(0.1);
        let arch = (family.build)(&config, &args, w, &mut |f| progress(0.1 + 0.4 * f))?;
        let pass = arch.pass_shape();
        progress(0.5);
        let arrays = arch.arrays();
        // Read every weight into memory now (a bad file fails the load, not the first request);
        // fused projections are materialised once here.
        mlx_rs::transforms::eval(arrays)?;
        let weight_bytes = arch.weight_bytes();
        progress(1.0);
        Ok(Model { config, arch, pass, weight_bytes })
    }

    /// Bytes of weights in memory.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// The dtype activations run in (that of the norm weights).
    pub fn dtype(&self) -> Dtype {
        self.arch.dtype()
    }

    /// Whether a pass of `positions` new positions attending to up to `context` positions each
    /// runs its matrix products on all of OpenBLAS's threads (see `blas.rs`).
    pub(crate) fn blas_parallel(&self, positions: usize, context: usize) -> bool {
        self.pass.parallel(positions, context)
    }

    pub(crate) fn new_cache(&self) -> KvCache {
        KvCache::new(&self.arch.cache_kinds())
    }

    /// A cache for this model as a speculative draft: its sliding windows can always go back
    /// `spare` positions (the most a round rejects), where the model's own follow mlx-lm's ring.
    pub(crate) fn new_draft_cache(&self, spare: usize) -> KvCache {
        KvCache::rewindable(&self.arch.cache_kinds(), spare as i32)
    }

    /// Runs the blocks over `tokens` (1-D), updating `cache`; returns the final hidden states
    /// `[L, hidden]` before the last norm.
    pub(crate) fn hidden(&self, tokens: &Array, cache: &mut KvCache) -> Result<Array> {
        self.hidden_rows(tokens, 1, tokens.shape()[0], cache)
    }

    /// Hidden states `[b·l, hidden]` of a `[b, l]` block of token ids given row by row in the
    /// 1-D `ids`. Activations stay two-dimensional between the attention blocks, so each linear
    /// layer is one plain matrix product (a 3-D product adds a flatten and an unflatten per
    /// layer); the numbers are the same.
    fn hidden_rows(&self, ids: &Array, b: i32, l: i32, cache: &mut KvCache) -> Result<Array> {
        self.arch.forward(ids, &mut Pass::one(cache, b, l))
    }

    /// Runs several new prompts as one `[batch, len]` pass (row `i`: `prompts[i]`, padded on the
    /// right), writing each prompt's keys and values to its own empty cache, and returns the
    /// logits of every prompt's last token, `[batch, vocab]`. One pass instead of one per prompt
    /// (and instead of mlx-lm's two per prompt: all but the last token, then the last): the
    /// per-operation cost is paid once for the batch.
    pub(crate) fn prefill_fresh(&self, prompts: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Array> {
        let (ids, l) = padded(prompts);
        let lens: Vec<i32> = prompts.iter().map(|p| p.len() as i32).collect();
        let ids = Array::from_slice(&ids, &[ids.len() as i32]);
        // Each prompt's last position is the only output of the last block anything reads, so
        // that block carries only these rows past its key/value projection (and so do the final
        // norm and the vocabulary projection).
        let h = self.arch.forward(&ids, &mut Pass::fresh(caches, lens, l as i32))?;
        self.vocab_logits(&h)
    }

    /// One new token for each of several running sequences (row `i`: `tokens[i]`, continuing
    /// `caches[i]`) as one pass: the linear layers run once for all rows (reading the weights
    /// once), attention runs per row over its own history. Returns `[rows, vocab]` logits.
    pub(crate) fn decode_rows(&self, tokens: &Array, caches: &mut [&mut KvCache]) -> Result<Array> {
        let h = self.arch.forward(tokens, &mut Pass::decode(caches))?;
        self.vocab_logits(&h)
    }

    /// Logits of the last position, `[1, vocab]`.
    pub(crate) fn logits(&self, tokens: &Array, cache: &mut KvCache) -> Result<Array> {
        let h = self.hidden(tokens, cache)?;
        let l = h.shape()[0];
        let h = if l == 1 { h } else { h.try_index((l - 1.., ..))? };
        self.vocab_logits(&h)
    }

    /// Logits of every position of `tokens`, `[len, vocab]` (a draft's proposals verified in
    /// one pass).
    pub(crate) fn logits_all(&self, tokens: &Array, cache: &mut KvCache) -> Result<Array> {
        let h = self.hidden(tokens, cache)?;
        self.vocab_logits(&h)
    }

    /// Whether its cache can go back a few positions (speculative decoding drops what the
    /// model did not accept): not with recurrent layers, whose state holds no past positions.
    pub(crate) fn can_rewind(&self) -> bool {
        !self.arch.cache_kinds().contains(&crate::cache::CacheKind::Recurrent)
    }

    /// The final norm and the vocabulary projection of hidden states `[rows, hidden]`.
    fn vocab_logits(&self, h: &Array) -> Result<Array> {
        self.arch.logits(&self.arch.final_norm(h)?)
    }

    /// Embeddings of token sequences computed as one batch: final hidden states (after the last
    /// norm), mean-pooled over each sequence's own positions and L2-normalised, as f32. Shorter
    /// sequences are padded on the right; with causal attention no real position sees the
    /// padding, and the pooling leaves it out, so each vector is its one-by-one value (up to
    /// float rounding).
    pub(crate) fn embed_batch(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let b = seqs.len();
        let (ids, l) = padded(seqs);
        let mask: Vec<f32> = seqs.iter().flat_map(|s| (0..l).map(|i| if i < s.len() { 1.0 } else { 0.0 })).collect();
        let lens: Vec<f32> = seqs.iter().map(|s| s.len() as f32).collect();
        let mut cache = self.new_cache();
        let ids = Array::from_slice(&ids, &[(b * l) as i32]);
        let h = self.hidden_rows(&ids, b as i32, l as i32, &mut cache)?.reshape(&[b as i32, l as i32, -1])?;
        let h = self.arch.final_norm(&h)?.as_dtype(Dtype::Float32)?;
        let mask = Array::from_slice(&mask, &[b as i32, l as i32, 1]);
        let mean = h.multiply(&mask)?.sum_axis(1, false)?.divide(Array::from_slice(&lens, &[b as i32, 1]))?;
        let norm = mean.square()?.sum_axis(-1, true)?.sqrt()?;
        let unit = mean.divide(ops::maximum(&norm, Array::from_f32(1e-12))?)?;
        unit.eval()?;
        let d = unit.shape()[1] as usize;
        Ok(unit.as_slice::<f32>().chunks(d).map(<[f32]>::to_vec).collect())
    }
}
