//! The attention block every family here uses: projections (fused q/k/v, or a checkpoint's own
//! fused `qkv_proj`), optional per-head q/k norms, RoPE (partial or full), and the attention
//! itself over the pass's caches ([`AttentionSpec`]: fused kernel or soft-capped scores,
//! sliding window).

use mlx_rs::{ops, Array};

use super::layers::{Linear, RmsNorm};
use super::rope::RopeAt;
use super::weights::WeightSet;
use crate::cache::{AttentionSpec, LayerCaches};
use crate::config::Quantization;
use crate::error::Result;

/// Head counts and widths of one attention block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads {
    /// Query heads.
    pub(crate) q: i32,
    /// Key/value heads.
    pub(crate) kv: i32,
    /// Width of each head.
    pub(crate) dim: i32,
}

/// How a checkpoint stores an attention block's projections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionLayout {
    /// `qkv_proj` already fused in the checkpoint (Phi-3), else `q_proj`/`k_proj`/`v_proj`.
    pub(crate) fused_qkv: bool,
    /// Bias on q/k/v.
    pub(crate) qkv_bias: bool,
    /// Bias on o_proj.
    pub(crate) o_bias: bool,
    /// Per-head RMS norms of queries and keys (`q_norm`, `k_norm`).
    pub(crate) qk_norm: bool,
    /// Those norms scale by `1 + w` (Gemma) rather than `w`.
    pub(crate) norm_plus_one: bool,
    /// Per-head attention sinks (`sinks`, gpt-oss).
    pub(crate) sinks: bool,
    /// `q_proj` also yields a per-head output gate (Qwen3-Next): the attention output is
    /// multiplied by `sigmoid(gate)` before `o_proj`.
    pub(crate) output_gate: bool,
    /// Values are RMS-normed per head without a learned scale (Gemma 4).
    pub(crate) v_norm: bool,
    /// No `v_proj`: the values are the keys' projection before its norm and RoPE (Gemma 4's
    /// `attention_k_eq_v` global layers).
    pub(crate) k_eq_v: bool,
    /// No key/value projections at all: the layer attends over the keys and values an earlier
    /// layer stored in this pass (Gemma 4's KV-shared layers; see [`Attention::forward_kv`]).
    pub(crate) kv_shared: bool,
}

impl AttentionLayout {
    /// Separate q/k/v projections, no biases, no q/k norms.
    pub(crate) const PLAIN: AttentionLayout = AttentionLayout {
        fused_qkv: false,
        qkv_bias: false,
        o_bias: false,
        qk_norm: false,
        norm_plus_one: false,
        sinks: false,
        output_gate: false,
        v_norm: false,
        k_eq_v: false,
        kv_shared: false,
    };
}

pub(crate) struct Attention {
    /// q, k and v projections fused (outputs in that order).
    qkv_proj: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: Heads,
    spec: AttentionSpec,
    output_gate: bool,
    /// The layout's `v_norm`, `k_eq_v` and `kv_shared`, and the norms' epsilon.
    layout: AttentionLayout,
    eps: f32,
}

impl Attention {
    /// Reads the block under `prefix` (e.g. `model.layers.3.self_attn`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        w: &mut WeightSet,
        prefix: &str,
        d: i32,
        heads: Heads,
        layout: AttentionLayout,
        mut spec: AttentionSpec,
        eps: f32,
        q: Option<Quantization>,
    ) -> Result<Attention> {
        if layout.sinks {
            spec.sinks = Some(w.take_shaped(&format!("{prefix}.sinks"), &[heads.q])?);
        }
        let (qw, kvw) = (heads.q * heads.dim, heads.kv * heads.dim);
        let q_out = if layout.output_gate { 2 * qw } else { qw };
        let qkv_proj = if layout.fused_qkv {
            w.linear(&format!("{prefix}.qkv_proj"), d, qw + 2 * kvw, layout.qkv_bias, q)?
        } else {
            let mut parts = vec![w.linear(&format!("{prefix}.q_proj"), d, q_out, layout.qkv_bias, q)?];
            if !layout.kv_shared {
                parts.push(w.linear(&format!("{prefix}.k_proj"), d, kvw, layout.qkv_bias, q)?);
                if !layout.k_eq_v {
                    parts.push(w.linear(&format!("{prefix}.v_proj"), d, kvw, layout.qkv_bias, q)?);
                }
            }
            if parts.len() == 1 {
                parts.pop().expect("one")
            } else {
                Linear::fuse(parts)?
            }
        };
        let norm = |w: &mut WeightSet, name: &str| -> Result<Option<RmsNorm>> {
            if !layout.qk_norm || (layout.kv_shared && name == "k_norm") {
                return Ok(None);
            }
            Ok(Some(w.norm(&format!("{prefix}.{name}"), heads.dim, eps, layout.norm_plus_one)?))
        };
        Ok(Attention {
            qkv_proj,
            o_proj: w.linear(&format!("{prefix}.o_proj"), qw, d, layout.o_bias, q)?,
            q_norm: norm(w, "q_norm")?,
            k_norm: norm(w, "k_norm")?,
            heads,
            spec,
            output_gate: layout.output_gate,
            layout,
            eps,
        })
    }

    /// Attention output `[rows, hidden]` of normed inputs `x` `[b·l, hidden]`.
    pub(crate) fn forward(&self, x: &Array, rows: (i32, i32), cache: &mut LayerCaches, rope: &RopeAt) -> Result<Array> {
        Ok(self.forward_kv(x, rows, cache, rope, None)?.0)
    }

    /// [`Attention::forward`], also returning this pass's keys and values `[b, kv_heads, l,
    /// head_dim]` (normed and rotated, as stored) for the layers that share them. A KV-shared
    /// layer passes the earlier layer's as `shared` with that layer's caches as `cache`: its
    /// queries attend over what that layer stored, and nothing is written.
    pub(crate) fn forward_kv(
        &self,
        x: &Array,
        (b, l): (i32, i32),
        cache: &mut LayerCaches,
        rope: &RopeAt,
        shared: Option<&(Array, Array)>,
    ) -> Result<(Array, Option<(Array, Array)>)> {
        let h = self.heads;
        let projected = self.qkv_proj.forward(x)?;
        let (qkv, gate) = if self.layout.kv_shared || self.layout.k_eq_v {
            // Queries alone, or queries and keys (whose projection is also the values').
            let kv = if self.layout.kv_shared { 0 } else { h.kv };
            let all = projected.reshape(&[b, l, h.q + kv, h.dim])?;
            let mut parts = if kv == 0 { vec![all] } else { all.split_at_indices(&[h.q], 2)? };
            if kv != 0 {
                parts.push(parts[1].clone());
            }
            (parts, None)
        } else if self.output_gate {
            // Each query head's width is followed by its gate's.
            let parts = projected.split_at_indices(&[2 * h.q * h.dim], -1)?;
            let qg = parts[0].reshape(&[b, l, h.q, 2 * h.dim])?.split_at_indices(&[h.dim], -1)?;
            let kv = parts[1].reshape(&[b, l, 2 * h.kv, h.dim])?.split_at_indices(&[h.kv], 2)?;
            let gate = qg[1].reshape(&[b * l, h.q * h.dim])?;
            (vec![qg[0].clone(), kv[0].clone(), kv[1].clone()], Some(gate))
        } else {
            // [b, l, q_heads + 2 kv_heads, head_dim] is contiguous; q/k/v are views into it.
            let all = projected.reshape(&[b, l, h.q + 2 * h.kv, h.dim])?;
            (all.split_at_indices(&[h.q, h.q + h.kv], 2)?, None)
        };
        let per_head = |t: &Array, norm: &Option<RmsNorm>| -> Result<Array> {
            let t = match norm {
                Some(norm) => norm.forward(t)?,
                None => t.clone(),
            };
            Ok(t.transpose_axes(&[0, 2, 1, 3])?)
        };
        let q = rope.apply(&per_head(&qkv[0], &self.q_norm)?)?;
        let (o, kv) = match shared {
            Some(kv) => (cache.attend_stored(&q, kv, &self.spec)?, None),
            None => {
                let k = rope.apply(&per_head(&qkv[1], &self.k_norm)?)?;
                let v = if self.layout.v_norm {
                    mlx_rs::fast::rms_norm(&qkv[2], None, self.eps)?.transpose_axes(&[0, 2, 1, 3])?
                } else {
                    per_head(&qkv[2], &None)?
                };
                (cache.attend(&q, k.clone(), v.clone(), &self.spec)?, Some((k, v)))
            }
        };
        // Rows: b·l, or fewer when attention kept only some positions.
        let o = o.transpose_axes(&[0, 2, 1, 3])?.reshape(&[-1, h.q * h.dim])?;
        let o = match gate {
            Some(gate) => {
                let gate = match cache.kept_rows(l) {
                    Some(rows) => gate.take_axis(&rows, 0)?,
                    None => gate,
                };
                o.multiply(ops::sigmoid(&gate)?)?
            }
            None => o,
        };
        Ok((self.o_proj.forward(&o)?, kv))
    }

    /// This block's sliding window, if it has one.
    pub(crate) fn window(&self) -> Option<i32> {
        self.spec.window
    }

    /// This block's arrays.
    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        self.qkv_proj.arrays(out);
        self.o_proj.arrays(out);
        out.extend(self.q_norm.iter().chain(&self.k_norm).map(|n| &n.weight));
        out.extend(&self.spec.sinks);
    }

    pub(crate) fn nbytes(&self) -> usize {
        self.qkv_proj.nbytes()
            + self.o_proj.nbytes()
            + self.q_norm.iter().chain(&self.k_norm).map(|n| n.weight.nbytes()).sum::<usize>()
            + self.spec.sinks.as_ref().map_or(0, Array::nbytes)
    }
}
