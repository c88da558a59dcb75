//! Multi-head latent attention (DeepSeek-V2/V3): keys and values come from one low-rank latent
//! per position. Two graphs, as mlx-lm has them:
//! - [`Expansion::Absorbed`] (`DeepseekV3Attention` with `mla.py`'s `MultiLinear`): the cache
//!   holds the latent (with the rotated positional key, one head shared by all), not per-head
//!   keys and values. Scores are the latent part (queries taken into the latent space for one
//!   query, keys taken out of it for several) plus the rotary part, which enters MLX's attention
//!   as its additive mask — the same graph as mlx-lm's, so the numbers match.
//! - [`Expansion::Projected`] (`DeepseekV2Attention`): one `kv_b_proj` takes the latent out to
//!   per-head keys (with the positional key repeated on every head) and values, which are
//!   cached and attended over as in any attention block.

use mlx_rs::fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask};
use mlx_rs::{ops, Array};

use super::args::Args;
use super::layers::{Linear, RmsNorm};
use super::rope::RopeAt;
use super::weights::WeightSet;
use crate::cache::{causal_mask, lowest, AttentionSpec, LayerCaches};
use crate::config::{ModelConfig, Quantization};
use crate::error::Result;

/// How the latent becomes each head's keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expansion {
    /// Per-head `embed_q` / `unembed_out` (DeepSeek-V3 as mlx-lm sanitizes it): the cache holds
    /// the latent.
    Absorbed,
    /// One `kv_b_proj` to per-head keys and values (DeepSeek-V2): the cache holds those.
    Projected,
}

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
    pub(crate) expansion: Expansion,
}

impl LatentShape {
    /// The widths as DeepSeek's config.json names them (`q_lora_rank`, `kv_lora_rank`,
    /// `qk_nope_head_dim`, `qk_rope_head_dim`, `v_head_dim`, `attention_bias`; mlx-lm's
    /// defaults), and the score scale with YaRN's `mscale_all_dim` folded in as mlx-lm does.
    pub(crate) fn read(config: &ModelConfig, args: &Args, expansion: Expansion) -> Result<LatentShape> {
        let int = |key: &str, default: i32| args.i32_or(key, default);
        let (nope, rope) = (int("qk_nope_head_dim", 128), int("qk_rope_head_dim", 64));
        let (kv_rank, v_dim) = (int("kv_lora_rank", 512), int("v_head_dim", 128));
        let q_rank = match args.rest.get("q_lora_rank") {
            Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| config.invalid("`q_lora_rank` is not an integer"))? as i32),
            None => Some(1536),
        };
        if [nope, rope, kv_rank, v_dim].into_iter().chain(q_rank).any(|v| v < 1) || rope % 2 != 0 {
            return Err(config.invalid("latent attention widths must be positive (and qk_rope_head_dim even)"));
        }
        // (nope + rope)^-0.5, times YaRN's mscale² (in f64, as Python computes it).
        let mut scale = ((nope + rope) as f64).powf(-0.5);
        if let Some(s) = config.args.get("rope_scaling").and_then(|v| v.as_object()) {
            let num = |key: &str| s.get(key).and_then(|v| v.as_f64()).unwrap_or(0.0);
            let (mscale_all_dim, factor) = (num("mscale_all_dim"), num("factor"));
            if mscale_all_dim != 0.0 && factor > 1.0 {
                let m = 0.1 * mscale_all_dim * factor.ln() + 1.0;
                scale *= m * m;
            }
        }
        Ok(LatentShape {
            heads: args.num_heads,
            q_rank,
            kv_rank,
            nope,
            rope,
            v_dim,
            bias: args.bool_or("attention_bias", false),
            scale: scale as f32,
            expansion,
        })
    }
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

/// The latent's way out to each head's keys and values.
enum KvUp {
    /// Queries into the latent (`embed_q`), outputs out of it (`unembed_out`).
    Absorbed { embed_q: MultiLinear, unembed_out: MultiLinear },
    /// Keys (without rotation) and values of every head from the latent, and the attention
    /// over them.
    Projected { kv_b: Linear, spec: AttentionSpec },
}

pub(crate) struct LatentAttention {
    q: QueryProj,
    kv_a: Linear,
    kv_norm: RmsNorm,
    kv_up: KvUp,
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
            kv_up: match s.expansion {
                Expansion::Absorbed => KvUp::Absorbed {
                    embed_q: MultiLinear::load(w, &p("embed_q"), s.heads, s.kv_rank, s.nope, q)?,
                    unembed_out: MultiLinear::load(w, &p("unembed_out"), s.heads, s.v_dim, s.kv_rank, q)?,
                },
                Expansion::Projected => KvUp::Projected {
                    kv_b: w.linear(&p("kv_b_proj"), s.kv_rank, s.heads * (s.nope + s.v_dim), false, q)?,
                    spec: AttentionSpec { scale: s.scale, softcap: None, window: None, sinks: None },
                },
            },
            o_proj: w.linear(&p("o_proj"), s.heads * s.v_dim, d, s.bias, q)?,
            shape,
        })
    }

    /// Attention output `[rows, hidden]` of normed inputs `x` `[b·l, hidden]`. Absorbed, the
    /// cache holds each position's normed latent (as its keys) and rotated positional key (as
    /// its values); projected, each head's keys and values.
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
        let KvUp::Absorbed { embed_q, unembed_out } = &self.kv_up else {
            return self.forward_projected(&q, &kv[0], k_pe, (b, l), cache, rope);
        };
        let latent = self.kv_norm.forward(&kv[0])?.reshape(&[b, 1, l, s.kv_rank])?;
        // Queries travel as one array (latent part, then rotated part) through the cache's rows.
        let queries = ops::concatenate(&[q[0].clone(), rope.apply(&q[1])?], -1)?;
        let attend = |q: &Array, latent: &Array, k_pe: &Array| self.attend(embed_q, unembed_out, q, latent, k_pe);
        let o = cache.attend_with(&queries, latent, rope.apply(&k_pe)?, &attend)?;
        let o = o.transpose_axes(&[0, 2, 1, 3])?.reshape(&[-1, s.heads * s.v_dim])?;
        self.o_proj.forward(&o)
    }

    /// mlx-lm's `DeepseekV2Attention` from the queries split `[b, heads, l, nope | rope]`, the
    /// latent `[b·l, kv_rank]` before its norm and the positional key `[b, 1, l, rope]`.
    fn forward_projected(
        &self,
        q: &[Array],
        latent: &Array,
        k_pe: Array,
        (b, l): (i32, i32),
        cache: &mut LayerCaches,
        rope: &RopeAt,
    ) -> Result<Array> {
        let s = self.shape;
        let KvUp::Projected { kv_b, spec } = &self.kv_up else { unreachable!("called for the projected expansion") };
        let heads = kv_b.forward(&self.kv_norm.forward(latent)?)?;
        let heads = heads.reshape(&[b, l, s.heads, s.nope + s.v_dim])?.transpose_axes(&[0, 2, 1, 3])?;
        let heads = heads.split_at_indices(&[s.nope], -1)?;
        // The positional key is one head's, repeated on every head (`mx.repeat`).
        let k_pe = ops::broadcast_to(rope.apply(&k_pe)?, &[b, s.heads, l, s.rope])?;
        let keys = ops::concatenate(&[heads[0].clone(), k_pe], -1)?;
        let queries = ops::concatenate(&[q[0].clone(), rope.apply(&q[1])?], -1)?;
        let o = cache.attend(&queries, keys, heads[1].clone(), spec)?;
        let o = o.transpose_axes(&[0, 2, 1, 3])?.reshape(&[-1, s.heads * s.v_dim])?;
        self.o_proj.forward(&o)
    }

    /// mlx-lm's attention of queries `[b, heads, lq, nope + rope]` over `latent` `[b, 1, lk,
    /// kv_rank]` and `k_pe` `[b, 1, lk, rope]`, causal.
    fn attend(
        &self,
        embed_q: &MultiLinear,
        unembed_out: &MultiLinear,
        q: &Array,
        latent: &Array,
        k_pe: &Array,
    ) -> Result<Array> {
        let s = self.shape;
        let (lq, lk) = (q.shape()[2], latent.shape()[2]);
        let q = q.split_at_indices(&[s.nope], -1)?;
        let scale = Array::from_f32(s.scale).as_dtype(q[1].dtype())?;
        let pe = q[1].multiply(&scale)?.matmul(k_pe.swap_axes(-1, -2)?)?;
        let (o, absorbed) = if lq == 1 {
            let q_latent = embed_q.forward(&q[0], true)?;
            let mask = ScaledDotProductAttentionMask::Array(&pe);
            (scaled_dot_product_attention(&q_latent, latent, latent, s.scale, mask, None)?, true)
        } else {
            let pe = ops::select(causal_mask(lq, lk, None)?, &pe, lowest(pe.dtype())?)?;
            let k = embed_q.forward(latent, false)?;
            let v = unembed_out.forward(latent, true)?;
            let mask = ScaledDotProductAttentionMask::Array(&pe);
            (scaled_dot_product_attention(&q[0], &k, &v, s.scale, mask, None)?, false)
        };
        if absorbed {
            unembed_out.forward(&o, true)
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
        match &self.kv_up {
            KvUp::Absorbed { embed_q, unembed_out } => {
                embed_q.arrays(out);
                unembed_out.arrays(out);
            }
            KvUp::Projected { kv_b, .. } => kv_b.arrays(out),
        }
        self.o_proj.arrays(out);
    }

    pub(crate) fn nbytes(&self) -> usize {
        let q = match &self.q {
            QueryProj::Full(p) => p.nbytes(),
            QueryProj::LowRank { a, norm, b } => a.nbytes() + norm.weight.nbytes() + b.nbytes(),
        };
        let kv_up = match &self.kv_up {
            KvUp::Absorbed { embed_q, unembed_out } => embed_q.nbytes() + unembed_out.nbytes(),
            KvUp::Projected { kv_b, .. } => kv_b.nbytes(),
        };
        q + self.kv_a.nbytes() + self.kv_norm.weight.nbytes() + kv_up + self.o_proj.nbytes()
    }
}
