//! The decoder-only transformer shared by Llama, Mistral, Qwen2 and Qwen3, mirroring mlx-lm's
//! graphs (so greedy outputs are token-identical to it); on the CPU a few operations take a
//! cheaper form with the same values (rope.rs) or values within a few ulp (activation.rs).

mod activation;
mod blas;
mod layers;
mod rope;
mod weights;

use std::path::Path;

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{ops, Array, Dtype};

use crate::cache::{KvCache, LayerCache, LayerCaches};
use crate::config::{Family, ModelConfig};
use crate::error::Result;
use activation::Silu;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use blas::symbol as blas_symbol;
use blas::PassShape;
use layers::{Embedding, Linear, RmsNorm};
use rope::{Rope, RopeAt};
pub(crate) use weights::weight_files;
use weights::WeightSet;

/// Whether the engine computes on the CPU (its default device), where some operations take a
/// cheaper form (rope.rs, activation.rs).
fn on_cpu() -> Result<bool> {
    Ok(matches!(mlx_rs::Device::default().get_type()?, mlx_rs::DeviceType::Cpu))
}

struct Attention {
    /// q, k and v projections fused (outputs in that order).
    qkv_proj: Linear,
    o_proj: Linear,
    /// Qwen3 normalises queries and keys per head.
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
}

struct Mlp {
    /// gate and up projections fused; split at `intermediate_size`.
    gate_up_proj: Linear,
    down_proj: Linear,
}

struct Block {
    attn: Attention,
    mlp: Mlp,
    input_norm: RmsNorm,
    post_attn_norm: RmsNorm,
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
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
    rope: Rope,
    /// For OpenBLAS's thread count per pass.
    pass: PassShape,
    /// The MLP's activation for the device.
    silu: Silu,
    weight_bytes: usize,
}

impl Model {
    /// Loads and validates the weights in `dir` for `config`, and evaluates them (so a bad file
    /// fails here, not in the middle of a request).
    pub fn load(dir: &Path, config: ModelConfig) -> Result<Model> {
        Model::load_with_progress(dir, config, &mut |_| {})
    }

    /// [`Model::load`], reporting how far it got (0 … 1) after each stage: weight files checked,
    /// each layer built, then the weights read into memory.
    pub fn load_with_progress(dir: &Path, config: ModelConfig, progress: &mut dyn FnMut(f32)) -> Result<Model> {
        let mut w = WeightSet::load(dir)?;
        progress(0.1);
        let c = &config;
        let q = c.quantization;
        let (d, hd) = (c.hidden_size, c.head_dim);
        let embed = w.embedding("model.embed_tokens", c.vocab_size, d, q)?;
        let mut blocks = Vec::with_capacity(c.num_layers as usize);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let qk_norm = c.family == Family::Qwen3;
            let attn = Attention {
                qkv_proj: Linear::fuse(vec![
                    w.linear(&format!("{p}.self_attn.q_proj"), d, c.num_heads * hd, c.qkv_bias, q)?,
                    w.linear(&format!("{p}.self_attn.k_proj"), d, c.num_kv_heads * hd, c.qkv_bias, q)?,
                    w.linear(&format!("{p}.self_attn.v_proj"), d, c.num_kv_heads * hd, c.qkv_bias, q)?,
                ])?,
                o_proj: w.linear(&format!("{p}.self_attn.o_proj"), c.num_heads * hd, d, c.o_bias, q)?,
                q_norm: qk_norm.then(|| w.norm(&format!("{p}.self_attn.q_norm"), hd, c.rms_norm_eps)).transpose()?,
                k_norm: qk_norm.then(|| w.norm(&format!("{p}.self_attn.k_norm"), hd, c.rms_norm_eps)).transpose()?,
            };
            let mlp = Mlp {
                gate_up_proj: Linear::fuse(vec![
                    w.linear(&format!("{p}.mlp.gate_proj"), d, c.intermediate_size, c.mlp_bias, q)?,
                    w.linear(&format!("{p}.mlp.up_proj"), d, c.intermediate_size, c.mlp_bias, q)?,
                ])?,
                down_proj: w.linear(&format!("{p}.mlp.down_proj"), c.intermediate_size, d, c.mlp_bias, q)?,
            };
            blocks.push(Block {
                attn,
                mlp,
                input_norm: w.norm(&format!("{p}.input_layernorm"), d, c.rms_norm_eps)?,
                post_attn_norm: w.norm(&format!("{p}.post_attention_layernorm"), d, c.rms_norm_eps)?,
            });
            progress(0.1 + 0.4 * (i + 1) as f32 / c.num_layers.max(1) as f32);
        }
        let norm = w.norm("model.norm", d, c.rms_norm_eps)?;
        let lm_head =
            if c.tie_word_embeddings { None } else { Some(w.linear("lm_head", d, c.vocab_size, false, q)?) };
        w.finish(c.tie_word_embeddings)?;
        let rope = Rope::new(c)?.with_table_on_cpu()?;
        let pass = PassShape::new(&config);
        let silu = Silu::for_default_device()?;
        let mut model = Model { config, embed, blocks, norm, lm_head, rope, pass, silu, weight_bytes: 0 };
        progress(0.5);
        model.weight_bytes = model.eval_weights()?;
        progress(1.0);
        Ok(model)
    }

    /// Materialises every weight (reads the files) and returns the bytes they hold.
    fn eval_weights(&self) -> Result<usize> {
        let mut bytes = self.embed.nbytes() + self.norm.weight.nbytes();
        bytes += self.lm_head.as_ref().map_or(0, Linear::nbytes);
        for b in &self.blocks {
            for l in [&b.attn.qkv_proj, &b.attn.o_proj, &b.mlp.gate_up_proj, &b.mlp.down_proj] {
                bytes += l.nbytes();
            }
            bytes += b.input_norm.weight.nbytes() + b.post_attn_norm.weight.nbytes();
        }
        // Read every weight into memory now (a bad file fails the load, not the first request);
        // fused projections are materialised once here.
        let mut arrays = vec![&self.norm.weight];
        self.embed.arrays(&mut arrays);
        if let Some(head) = &self.lm_head {
            head.arrays(&mut arrays);
        }
        for b in &self.blocks {
            for l in [&b.attn.qkv_proj, &b.attn.o_proj, &b.mlp.gate_up_proj, &b.mlp.down_proj] {
                l.arrays(&mut arrays);
            }
            arrays.extend([&b.input_norm.weight, &b.post_attn_norm.weight]);
            arrays.extend(b.attn.q_norm.iter().chain(&b.attn.k_norm).map(|n| &n.weight));
        }
        mlx_rs::transforms::eval(arrays)?;
        Ok(bytes)
    }

    /// Bytes of weights in memory.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// The dtype activations run in (that of the norm weights).
    pub fn dtype(&self) -> Dtype {
        self.norm.weight.dtype()
    }

    /// Whether a pass of `positions` new positions attending to up to `context` positions each
    /// runs its matrix products on all of OpenBLAS's threads (see `blas.rs`).
    pub(crate) fn blas_parallel(&self, positions: usize, context: usize) -> bool {
        self.pass.parallel(positions, context)
    }

    pub(crate) fn new_cache(&self) -> KvCache {
        KvCache::new(self.blocks.len())
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
        let mut h = self.embed.forward(ids)?;
        let offset = cache.layers.first().map_or(0, LayerCache::offset);
        self.pass.apply((b * l) as usize, (offset + l) as usize);
        let rope = self.rope.at(offset, l, h.dtype())?;
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            h = self.block(block, &h, (b, l), &mut LayerCaches::One(layer_cache), &rope, None)?;
        }
        Ok(h)
    }

    /// Runs several new prompts as one `[batch, len]` pass (row `i`: `prompts[i]`, padded on the
    /// right), writing each prompt's keys and values to its own empty cache, and returns the
    /// logits of every prompt's last token, `[batch, vocab]`. One pass instead of one per prompt
    /// (and instead of mlx-lm's two per prompt: all but the last token, then the last): the
    /// per-operation cost is paid once for the batch.
    pub(crate) fn prefill_fresh(&self, prompts: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Array> {
        let b = prompts.len() as i32;
        let (ids, l) = padded(prompts);
        let lens: Vec<i32> = prompts.iter().map(|p| p.len() as i32).collect();
        self.pass.apply(ids.len(), l);
        let mut h = self.embed.forward(&Array::from_slice(&ids, &[ids.len() as i32]))?;
        let rope = self.rope.at(0, l as i32, h.dtype())?;
        // Each prompt's last position: the only output of the last block anything reads, so that
        // block carries only these rows past its key/value projection (and so do the final norm
        // and the vocabulary projection).
        let last: Vec<i32> = lens.iter().enumerate().map(|(i, n)| i as i32 * l as i32 + n - 1).collect();
        let last = Array::from_slice(&last, &[b]);
        let depth = self.blocks.len();
        for (j, block) in self.blocks.iter().enumerate() {
            let mut layer: Vec<&mut LayerCache> = caches.iter_mut().map(|c| &mut c.layers[j]).collect();
            let last_only = j + 1 == depth;
            let mut fresh = LayerCaches::Fresh { caches: &mut layer, lens: &lens, last_only };
            h = self.block(block, &h, (b, l as i32), &mut fresh, &rope, last_only.then_some(&last))?;
        }
        self.vocab_logits(&h)
    }

    /// One new token for each of several running sequences (row `i`: `tokens[i]`, continuing
    /// `caches[i]`) as one pass: the linear layers run once for all rows (reading the weights
    /// once), attention runs per row over its own history. Returns `[rows, vocab]` logits.
    pub(crate) fn decode_rows(&self, tokens: &Array, caches: &mut [&mut KvCache]) -> Result<Array> {
        let rows = tokens.shape()[0];
        let mut h = self.embed.forward(tokens)?;
        let positions: Vec<i32> = caches.iter().map(|c| c.layers.first().map_or(0, LayerCache::offset)).collect();
        self.pass.apply(rows as usize, positions.iter().max().map_or(1, |p| *p as usize + 1));
        let rope = self.rope.at_rows(&positions, h.dtype())?;
        for (j, block) in self.blocks.iter().enumerate() {
            let mut layer: Vec<&mut LayerCache> = caches.iter_mut().map(|c| &mut c.layers[j]).collect();
            h = self.block(block, &h, (rows, 1), &mut LayerCaches::Decode { caches: &mut layer }, &rope, None)?;
        }
        self.vocab_logits(&h)
    }

    /// Logits of the last position, `[1, vocab]`.
    pub(crate) fn logits(&self, tokens: &Array, cache: &mut KvCache) -> Result<Array> {
        let h = self.hidden(tokens, cache)?;
        let l = h.shape()[0];
        let h = if l == 1 { h } else { h.try_index((l - 1.., ..))? };
        self.vocab_logits(&h)
    }

    /// The final norm and the vocabulary projection of hidden states `[rows, hidden]`.
    fn vocab_logits(&self, h: &Array) -> Result<Array> {
        let h = self.norm.forward(h)?;
        Ok(match &self.lm_head {
            Some(head) => head.forward(&h)?,
            None => self.embed.as_linear(&h)?,
        })
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
        let h = self.norm.forward(&h)?.as_dtype(Dtype::Float32)?;
        let mask = Array::from_slice(&mask, &[b as i32, l as i32, 1]);
        let mean = h.multiply(&mask)?.sum_axis(1, false)?.divide(Array::from_slice(&lens, &[b as i32, 1]))?;
        let norm = mean.square()?.sum_axis(-1, true)?.sqrt()?;
        let unit = mean.divide(ops::maximum(&norm, Array::from_f32(1e-12))?)?;
        unit.eval()?;
        let d = unit.shape()[1] as usize;
        Ok(unit.as_slice::<f32>().chunks(d).map(<[f32]>::to_vec).collect())
    }

    /// One block over `x`, `[b·l, hidden]` for `rows` = `(b, l)`. With `keep`, the rows of `x`
    /// the attention returns (the last position of each prompt, see [`LayerCaches::Fresh`]) are
    /// the only ones carried on.
    fn block(
        &self,
        b: &Block,
        x: &Array,
        rows: (i32, i32),
        cache: &mut LayerCaches,
        rope: &RopeAt,
        keep: Option<&Array>,
    ) -> Result<Array> {
        let r = self.attention(&b.attn, &b.input_norm.forward(x)?, rows, cache, rope)?;
        let h = match keep {
            Some(rows) => x.take_axis(rows, 0)?.add(&r)?,
            None => x.add(&r)?,
        };
        let m = &b.mlp;
        let n = b.post_attn_norm.forward(&h)?;
        let gate_up = m.gate_up_proj.forward(&n)?.split_at_indices(&[self.config.intermediate_size], -1)?;
        let (gate, up) = (&gate_up[0], &gate_up[1]);
        let act = self.silu.apply(gate)?.multiply(up)?;
        Ok(h.add(m.down_proj.forward(&act)?)?)
    }

    fn attention(
        &self,
        a: &Attention,
        x: &Array,
        (b, l): (i32, i32),
        cache: &mut LayerCaches,
        rope: &RopeAt,
    ) -> Result<Array> {
        let c = &self.config;
        // [b, l, q_heads + 2 kv_heads, head_dim] is contiguous; q/k/v are views into it.
        let heads = a.qkv_proj.forward(x)?.reshape(&[b, l, c.num_heads + 2 * c.num_kv_heads, c.head_dim])?;
        let qkv = heads.split_at_indices(&[c.num_heads, c.num_heads + c.num_kv_heads], 2)?;
        let per_head = |t: &Array, norm: &Option<RmsNorm>| -> Result<Array> {
            let t = match norm {
                Some(norm) => norm.forward(t)?,
                None => t.clone(),
            };
            Ok(t.transpose_axes(&[0, 2, 1, 3])?)
        };
        let q = per_head(&qkv[0], &a.q_norm)?;
        let k = per_head(&qkv[1], &a.k_norm)?;
        let v = per_head(&qkv[2], &None)?;
        let q = rope.apply(&q)?;
        let k = rope.apply(&k)?;
        let scale = (c.head_dim as f64).powf(-0.5) as f32;
        let o = cache.attend(&q, k, v, scale)?;
        // Rows: b·l, or fewer when attention kept only some positions.
        let o = o.transpose_axes(&[0, 2, 1, 3])?.reshape(&[-1, c.num_heads * c.head_dim])?;
        a.o_proj.forward(&o)
    }
}
