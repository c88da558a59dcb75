//! Mixture-of-Experts feed-forward (mlx-lm's `SwitchGLU` with a router): each position is sent
//! to its top-k experts, whose gated MLPs run through `gather_mm` (dense) or `gather_qmm`
//! (4/8-bit experts stay quantized), and their outputs are summed with the router's weights.

use mlx_rs::ops::indexing::{take_along_axis, TryIndexOp};
use mlx_rs::ops::{self, argpartition_axis, argsort_axis, gather_mm, gather_qmm};
use mlx_rs::Array;

use super::activation::Silu;
use super::layers::Linear;
use super::weights::WeightSet;
use crate::config::Quantization;
use crate::error::Result;

/// How the router's logits become each position's experts and their weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    /// Softmax over all experts, then the top k (renormalised to sum 1 when `renormalize`):
    /// Qwen3-MoE.
    SoftmaxTopK { renormalize: bool },
    /// The top k logits, then a softmax over those: Mixtral.
    TopKSoftmax,
}

/// The shape of one MoE block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoeSpec {
    pub(crate) experts: i32,
    pub(crate) top_k: i32,
    /// Each expert's MLP width.
    pub(crate) width: i32,
    pub(crate) routing: Routing,
}

/// Every expert's weights for one projection: `[experts, out, in]`.
enum SwitchLinear {
    /// Transposed to `[experts, in, out]` once at load.
    Dense {
        t: Array,
        weight: Array,
    },
    Quantized {
        weight: Array,
        scales: Array,
        biases: Array,
        q: Quantization,
    },
}

impl SwitchLinear {
    fn load(
        w: &mut WeightSet,
        prefix: &str,
        spec: MoeSpec,
        in_dim: i32,
        out_dim: i32,
        q: Option<Quantization>,
    ) -> Result<Self> {
        match w.quantization_of(prefix, q)? {
            Some(q) => {
                let (weight, scales, biases) = w.packed_experts(prefix, spec.experts, out_dim, in_dim, q)?;
                Ok(SwitchLinear::Quantized { weight, scales, biases, q })
            }
            None => {
                let weight = w.take_shaped(&format!("{prefix}.weight"), &[spec.experts, out_dim, in_dim])?;
                Ok(SwitchLinear::Dense { t: weight.swap_axes(-1, -2)?, weight })
            }
        }
    }

    /// `x` `[n, 1, in]` (or `[rows, 1, 1, in]`) times expert `indices`' weights.
    fn forward(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        Ok(match self {
            SwitchLinear::Dense { t, .. } => gather_mm(x, t, None, indices, sorted)?,
            SwitchLinear::Quantized { weight, scales, biases, q } => {
                gather_qmm(x, weight, scales, biases, None, indices, true, q.group_size, q.bits, sorted)?
            }
        })
    }

    fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        match self {
            SwitchLinear::Dense { t, weight } => out.extend([weight, t]),
            SwitchLinear::Quantized { weight, scales, biases, .. } => out.extend([weight, scales, biases]),
        }
    }

    fn nbytes(&self) -> usize {
        match self {
            SwitchLinear::Dense { weight, .. } => weight.nbytes(),
            SwitchLinear::Quantized { weight, scales, biases, .. } => {
                weight.nbytes() + scales.nbytes() + biases.nbytes()
            }
        }
    }
}

pub(crate) struct Moe {
    router: Linear,
    gate_proj: SwitchLinear,
    up_proj: SwitchLinear,
    down_proj: SwitchLinear,
    spec: MoeSpec,
    silu: Silu,
}

impl Moe {
    /// Reads `{prefix}.gate` (the router) and `{prefix}.switch_mlp.{gate,up,down}_proj`.
    pub(crate) fn load(w: &mut WeightSet, prefix: &str, d: i32, spec: MoeSpec, q: Option<Quantization>) -> Result<Moe> {
        let sw = format!("{prefix}.switch_mlp");
        Ok(Moe {
            router: w.linear(&format!("{prefix}.gate"), d, spec.experts, false, q)?,
            gate_proj: SwitchLinear::load(w, &format!("{sw}.gate_proj"), spec, d, spec.width, q)?,
            up_proj: SwitchLinear::load(w, &format!("{sw}.up_proj"), spec, d, spec.width, q)?,
            down_proj: SwitchLinear::load(w, &format!("{sw}.down_proj"), spec, spec.width, d, q)?,
            spec,
            silu: Silu::for_default_device()?,
        })
    }

    /// `[rows, hidden]` → `[rows, hidden]`.
    pub(crate) fn forward(&self, x: &Array) -> Result<Array> {
        let k = self.spec.top_k;
        let logits = self.router.forward(x)?;
        let (indices, scores) = match self.spec.routing {
            Routing::SoftmaxTopK { renormalize } => {
                let gates = ops::softmax_axis(&logits, -1, true)?;
                let e = gates.shape()[1];
                let indices = argpartition_axis(&gates, -k, -1)?.try_index((.., e - k..))?;
                let scores = take_along_axis(&gates, &indices, -1)?;
                let scores = if renormalize { scores.divide(scores.sum_axis(-1, true)?)? } else { scores };
                (indices, scores)
            }
            Routing::TopKSoftmax => {
                let indices = argpartition_axis(&logits.negative()?, k - 1, -1)?.try_index((.., ..k))?;
                let scores = ops::softmax_axis(take_along_axis(&logits, &indices, -1)?, -1, true)?;
                (indices, scores)
            }
        };
        let y = self.experts(x, &indices)?;
        let weighted = y.multiply(ops::expand_dims(&scores, -1)?)?.sum_axis(-2, false)?;
        Ok(weighted.as_dtype(y.dtype())?)
    }

    /// Each row through its k experts' gated MLPs: `[rows, k, hidden]`. Many positions are
    /// sorted by expert first, as mlx-lm does (from 64 position-expert pairs on).
    fn experts(&self, x: &Array, indices: &Array) -> Result<Array> {
        let (rows, k, d) = (x.shape()[0], self.spec.top_k, x.shape()[1]);
        let sorted = rows * k >= 64;
        let (x, idx, inverse) = if sorted {
            let flat = indices.flatten(None, None)?;
            let order = argsort_axis(&flat, 0)?;
            let inverse = argsort_axis(&order, 0)?;
            let src = order.floor_divide(Array::from_int(k))?;
            (x.reshape(&[rows, 1, d])?.take_axis(&src, 0)?, flat.take_axis(&order, 0)?, Some(inverse))
        } else {
            (x.reshape(&[rows, 1, 1, d])?, indices.clone(), None)
        };
        let up = self.up_proj.forward(&x, &idx, sorted)?;
        let gate = self.gate_proj.forward(&x, &idx, sorted)?;
        let h = self.silu.apply(&gate)?.multiply(&up)?;
        let out = self.down_proj.forward(&h, &idx, sorted)?;
        Ok(match inverse {
            Some(inverse) => out.take_axis(&inverse, 0)?.reshape(&[rows, k, d])?,
            None => out.reshape(&[rows, k, d])?,
        })
    }

    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        self.router.arrays(out);
        for p in [&self.gate_proj, &self.up_proj, &self.down_proj] {
            p.arrays(out);
        }
    }

    pub(crate) fn nbytes(&self) -> usize {
        self.router.nbytes()
            + [&self.gate_proj, &self.up_proj, &self.down_proj].iter().map(|p| p.nbytes()).sum::<usize>()
    }
}
