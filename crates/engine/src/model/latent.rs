//! Multi-head latent attention (DeepSeek-V2/V3; mlx-lm's `DeepseekV3Attention` with `mla.py`'s
//! `MultiLinear`): keys and values come from one low-rank latent per position, which is what
//! the cache holds (with the rotated positional key, one head shared by all), not per-head keys
//! and values. Scores are the latent part (queries taken into the latent space for one query,
//! keys taken out of it for several) plus the rotary part, which enters MLX's attention as its
//! additive mask — the same graph as mlx-lm's, so the numbers match.

use mlx_rs::fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask};
use mlx_rs::{ops, Array};

use super::layers::{Linear, RmsNorm};
use super::rope::RopeAt;
use super::weights::WeightSet;
use crate::cache::{causal_mask, lowest, LayerCaches};
use crate::config::Quantization;
use crate::error::Result;

/// The widths of one latent attention block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LatentShape {
    pub(crate) heads: i32,
    /// Low rank of the queries (None: a full `q_proj`).
    pub(crate) q_rank: Option<i32>,
    /// Width of the key/value latent.
    pub(crate) kv_rank: i32,
    /// Per-head query/key features without and with rotation.
    pub(crate) nope: i32,
    pub(crate) rope: i32,
    /// Per-head value width.
    pub(crate) v_dim: i32,
    /// Biases on the input and output projections (`attention_bias`).
    pub(crate) bias: bool,
    /// Multiplies the scores (`(nope + rope)^-0.5`, times YaRN's mscale² where configured).
    pub(crate) scale: f32,
}

/// A per-head projection, weights `[heads, out, in]` (`MultiLinear`).
enum MultiLinear {
    Dense { weight: Array, t: Array },
    Quantized { weight: Array, scales: Array, biases: Array, q: Quantization },
}

impl MultiLinear {
    fn load(w: &mut WeightSet, prefix: &str, heads: i32, out: i32, inp: i32, q: Option<Quantization>) -> Result<Self> {
        Ok(match w.quantization_of(prefix, q, inp)? {
            Some(q) => {
                let (weight, scales, biases) = w.packed_experts(prefix, heads, out, inp, q)?;
                MultiLinear::Quantized { weight, scales, biases, q }
            }
            None => {
                let weight = w.take_shaped(&format!("{prefix}.weight"), &[heads, out, inp])?;
                MultiLinear::Dense { t: weight.swap_axes(-1, -2)?, weight }
            }
        })
    }

    /// `x Wᵀ` (`transpose`) or `x W`, per head.
    fn forward(&self, x: &Array, transpose: bool) -> Result<Array> {
        Ok(match self {
            MultiLinear::Dense { weight, t } => x.matmul(if transpose { t } else { weight })?,
            MultiLinear::Quantized { weight, scales, biases, q } => {
                ops::quantized_matmul(x, weight, scales, biases, transpose, q.group_size, q.bits)?
            }
        })
    }

    fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        match self {
            MultiLinear::Dense { weight, t } => out.extend([weight, t]),
            MultiLinear::Quantized { weight, scales, biases, .. } => out.extend([weight, scales, biases]),
        }
    }

    fn nbytes(&self) -> usize {
        match self {
            MultiLinear::Dense { weight, .. } => weight.nbytes(),
            MultiLinear::Quantized { weight, scales, biases, .. } => {
                weight.nbytes() + scales.nbytes() + biases.nbytes()
            }
        }
    }
}

/// The queries' projection: full, or through a normed low-rank bottleneck.
enum QueryProj {
    Full(Linear),
    LowRank { a: Linear, norm: RmsNorm, b: Linear },
}

pub(crate) struct LatentAttention {
    q: QueryProj,
    kv_a: Linear,
    kv_norm: RmsNorm,
    embed_q: MultiLinear,
    unembed_out: MultiLinear,
    o_proj: Linear,
    shape: LatentShape,
}

impl LatentAttention {
    /// Reads the block under `prefix` (e.g. `model.layers.3.self_attn`).
    pub(crate) fn load(
        w: &mut WeightSet,
        prefix: &str,
        d: i32,
        shape: LatentShape,
        q: Option<Quantization>,
    ) -> Result<LatentAttention> {
        let s = shape;
        let qw = s.heads * (s.nope + s.rope);
        let p = |name: &str| format!("{prefix}.{name}");
        let query = match s.q_rank {
            Some(r) => QueryProj::LowRank {
                a: w.linear(&p("q_a_proj"), d, r, s.bias, q)?,
                norm: w.norm(&p("q_a_layernorm"), r, 1e-6, false)?,
                b: w.linear(&p("q_b_proj"), r, qw, false, q)?,
            },
            None => QueryProj::Full(w.linear(&p("q_proj"), d, qw, false, q)?),
        };
        Ok(LatentAttention {
            q: query,
            kv_a: w.linear(&p("kv_a_proj_with_mqa"), d, s.kv_rank + s.rope, s.bias, q)?,
            kv_norm: w.norm(&p("kv_a_layernorm"), s.kv_rank, 1e-6, false)?,
            embed_q: MultiLinear::load(w, &p("embed_q"), s.heads, s.kv_rank, s.nope, q)?,
            unembed_out: MultiLinear::load(w, &p("unembed_out"), s.heads, s.v_dim, s.kv_rank, q)?,
            o_proj: w.linear(&p("o_proj"), s.heads * s.v_dim, d, s.bias, q)?,
            shape,
        })
    }

    /// Attention output `[rows, hidden]` of normed inputs `x` `[b·l, hidden]`; the cache holds
    /// each position's normed latent (as its keys) and rotated positional key (as its values).
    pub(crate) fn forward(
        &self,
        x: &Array,
        (b, l): (i32, i32),
        cache: &mut LayerCaches,
        rope: &RopeAt,
    ) -> Result<Array> {
        let s = self.shape;
        let q = match &self.q {
            QueryProj::Full(p) => p.forward(x)?,
            QueryProj::LowRank { a, norm, b } => b.forward(&norm.forward(&a.forward(x)?)?)?,
        };
        let q = q.reshape(&[b, l, s.heads, s.nope + s.rope])?.transpose_axes(&[0, 2, 1, 3])?;
        let q = q.split_at_indices(&[s.nope], -1)?;
        let kv = self.kv_a.forward(x)?.split_at_indices(&[s.kv_rank], -1)?;
        let k_pe = kv[1].reshape(&[b, l, 1, s.rope])?.transpose_axes(&[0, 2, 1, 3])?;
        let latent = self.kv_norm.forward(&kv[0])?.reshape(&[b, 1, l, s.kv_rank])?;
        // Queries travel as one array (latent part, then rotated part) through the cache's rows.
        let queries = ops::concatenate(&[q[0].clone(), rope.apply(&q[1])?], -1)?;
        let o =
            cache.attend_with(&queries, latent, rope.apply(&k_pe)?, &|q, latent, k_pe| self.attend(q, latent, k_pe))?;
        let o = o.transpose_axes(&[0, 2, 1, 3])?.reshape(&[-1, s.heads * s.v_dim])?;
        self.o_proj.forward(&o)
    }

    /// mlx-lm's attention of queries `[b, heads, lq, nope + rope]` over `latent` `[b, 1, lk,
    /// kv_rank]` and `k_pe` `[b, 1, lk, rope]`, causal.
    fn attend(&self, q: &Array, latent: &Array, k_pe: &Array) -> Result<Array> {
        let s = self.shape;
        let (lq, lk) = (q.shape()[2], latent.shape()[2]);
        let q = q.split_at_indices(&[s.nope], -1)?;
        let scale = Array::from_f32(s.scale).as_dtype(q[1].dtype())?;
        let pe = q[1].multiply(&scale)?.matmul(k_pe.swap_axes(-1, -2)?)?;
        let (o, absorbed) = if lq == 1 {
            let q_latent = self.embed_q.forward(&q[0], true)?;
            let mask = ScaledDotProductAttentionMask::Array(&pe);
            (scaled_dot_product_attention(&q_latent, latent, latent, s.scale, mask, None)?, true)
        } else {
            let pe = ops::select(causal_mask(lq, lk, None)?, &pe, lowest(pe.dtype())?)?;
            let k = self.embed_q.forward(latent, false)?;
            let v = self.unembed_out.forward(latent, true)?;
            let mask = ScaledDotProductAttentionMask::Array(&pe);
            (scaled_dot_product_attention(&q[0], &k, &v, s.scale, mask, None)?, false)
        };
        if absorbed {
            self.unembed_out.forward(&o, true)
        } else {
            Ok(o)
        }
    }

    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        match &self.q {
            QueryProj::Full(p) => p.arrays(out),
            QueryProj::LowRank { a, norm, b } => {
                a.arrays(out);
                out.push(&norm.weight);
                b.arrays(out);
            }
        }
        self.kv_a.arrays(out);
        out.push(&self.kv_norm.weight);
        self.embed_q.arrays(out);
        self.unembed_out.arrays(out);
        self.o_proj.arrays(out);
    }

    pub(crate) fn nbytes(&self) -> usize {
        let q = match &self.q {
            QueryProj::Full(p) => p.nbytes(),
            QueryProj::LowRank { a, norm, b } => a.nbytes() + norm.weight.nbytes() + b.nbytes(),
        };
        q + self.kv_a.nbytes()
            + self.kv_norm.weight.nbytes()
            + self.embed_q.nbytes()
            + self.unembed_out.nbytes()
            + self.o_proj.nbytes()
    }
}
