//! Mixture-of-Experts feed-forward (mlx-lm's `SwitchGLU` with a router): each position is sent
//! to its top-k experts, whose gated MLPs run through `gather_mm` (dense) or `gather_qmm`
//! (4/8-bit experts stay quantized), and their outputs are summed with the router's weights.

use mlx_rs::ops::indexing::{take_along_axis, TryIndexOp};
use mlx_rs::ops::{self, argpartition_axis, argsort_axis, gather_mm, gather_qmm};
use mlx_rs::Array;

use super::activation::Silu;
use super::layers::Linear;
use super::mlp::{Activation, GatedMlp};
use super::weights::WeightSet;
use crate::config::Quantization;
use crate::error::Result;

/// How the router's logits become each position's experts and their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Routing {
    /// Softmax over all experts, then the top k (renormalised to sum 1 when `renormalize`):
    /// Qwen3-MoE.
    SoftmaxTopK { renormalize: bool },
    /// The top k logits, then a softmax over those: Mixtral picks them as the k lowest of the
    /// negated logits (`negated`), gpt-oss as the k highest; the order of the k differs, and
    /// with it the order of the weighted sum.
    TopKSoftmax { negated: bool },
    /// DeepSeek-V3's (`noaux_tc`): sigmoid scores in float32 plus the router's learned
    /// `e_score_correction_bias` pick the top k, within the `top_groups` best of `groups` expert
    /// groups (each scored by its two best); they are weighted by their uncorrected scores,
    /// renormalised to sum 1 (`renormalize`, k > 1), times `scale`. The router is a plain
    /// weight matrix (never quantized).
    GroupedSigmoid { groups: i32, top_groups: i32, renormalize: bool, scale: f32 },
    /// DeepSeek-V2's: softmax scores pick the top k (the first k of an `argpartition` of the
    /// negated scores), within the `top_groups` best of `groups` expert groups (each scored by
    /// its best; `groups` 1: all experts); they are weighted by their scores times `scale`, not
    /// renormalised. The router is a plain weight matrix (never quantized).
    GroupedSoftmax { groups: i32, top_groups: i32, scale: f32 },
}

impl Routing {
    /// Expert groups and how many of them are kept, for the routings that group experts.
    pub(crate) fn groups(&self) -> Option<(i32, i32)> {
        match *self {
            Routing::GroupedSigmoid { groups, top_groups, .. } | Routing::GroupedSoftmax { groups, top_groups, .. } => {
                Some((groups, top_groups))
            }
            Routing::SoftmaxTopK { .. } | Routing::TopKSoftmax { .. } => None,
        }
    }
}

/// An expert every position also goes through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedExpert {
    /// Its MLP's width.
    pub(crate) width: i32,
    /// Scaled by `sigmoid(shared_expert_gate(x))` (Qwen3-Next's `shared_expert`), else added
    /// as is (DeepSeek's `shared_experts`).
    pub(crate) gated: bool,
}

/// The experts' gated activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpertActivation {
    /// `silu(gate) · up`.
    Silu,
    /// gpt-oss's clamped SwiGLU: `(clip(up, ±7) + 1) · g · sigmoid(1.702 g)`, `g = min(gate, 7)`.
    ClampedSwiglu,
    /// `gelu_tanh(gate) · up` (Gemma 4).
    GeluTanh,
}

/// The shape of one MoE block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoeSpec {
    pub(crate) experts: i32,
    pub(crate) top_k: i32,
    /// Each expert's MLP width.
    pub(crate) width: i32,
    pub(crate) routing: Routing,
    /// Module names under the block: the router (`gate`, `router`) and the experts
    /// (`switch_mlp`, `experts`).
    pub(crate) names: (&'static str, &'static str),
    /// Biases on the router and the experts' projections (gpt-oss).
    pub(crate) bias: bool,
    pub(crate) activation: ExpertActivation,
    /// A shared expert (Qwen3-Next, DeepSeek-V3).
    pub(crate) shared: Option<SharedExpert>,
}

impl MoeSpec {
    /// A typed config error unless there are experts, `top_k` of them can be chosen, they
    /// have a width, and their groups (where the routing groups them) split them evenly
    /// (checked when the model loads, before any weight is read).
    pub(crate) fn check(&self, config: &crate::config::ModelConfig) -> Result<()> {
        if self.experts < 1 || self.top_k < 1 || self.top_k > self.experts || self.width < 1 {
            return Err(config.invalid(format!(
                "experts per token ({}) must be within 1..={} experts, and the expert width ({}) positive",
                self.top_k, self.experts, self.width
            )));
        }
        if let Some((groups, top_groups)) = self.routing.groups() {
            if groups < 1 || self.experts % groups != 0 || top_groups < 1 || top_groups > groups {
                return Err(config.invalid(format!(
                    "{} experts in {groups} groups, the best {top_groups} kept: not a valid grouping",
                    self.experts
                )));
            }
        }
        Ok(())
    }
}

/// Every expert's weights for one projection: `[experts, out, in]`.
struct SwitchLinear {
    weights: SwitchWeights,
    /// `[experts, out]`.
    bias: Option<Array>,
}

enum SwitchWeights {
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
        let weights = match w.quantization_of(prefix, q, in_dim)? {
            Some(q) => {
                let (weight, scales, biases) = w.packed_experts(prefix, spec.experts, out_dim, in_dim, q)?;
                SwitchWeights::Quantized { weight, scales, biases, q }
            }
            None => {
                let weight = w.take_shaped(&format!("{prefix}.weight"), &[spec.experts, out_dim, in_dim])?;
                SwitchWeights::Dense { t: weight.swap_axes(-1, -2)?, weight }
            }
        };
        let bias =
            if spec.bias { Some(w.take_shaped(&format!("{prefix}.bias"), &[spec.experts, out_dim])?) } else { None };
        Ok(SwitchLinear { weights, bias })
    }

    /// Quantized (its products are libmlx's own kernels, not BLAS).
    fn is_quantized(&self) -> bool {
        matches!(self.weights, SwitchWeights::Quantized { .. })
    }

    /// `x` `[n, 1, in]` (or `[rows, 1, 1, in]`) times expert `indices`' weights.
    fn forward(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        let y = match &self.weights {
            SwitchWeights::Dense { t, .. } => gather_mm(x, t, None, indices, sorted)?,
            SwitchWeights::Quantized { weight, scales, biases, q } => {
                gather_qmm(x, weight, scales, biases, None, indices, true, q.group_size, q.bits, sorted)?
            }
        };
        Ok(match &self.bias {
            Some(b) => y.add(ops::expand_dims(b.take_axis(indices, 0)?, -2)?)?,
            None => y,
        })
    }

    fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        match &self.weights {
            SwitchWeights::Dense { t, weight } => out.extend([weight, t]),
            SwitchWeights::Quantized { weight, scales, biases, .. } => out.extend([weight, scales, biases]),
        }
        out.extend(&self.bias);
    }

    fn nbytes(&self) -> usize {
        let bias = self.bias.as_ref().map_or(0, Array::nbytes);
        bias + match &self.weights {
            SwitchWeights::Dense { weight, .. } => weight.nbytes(),
            SwitchWeights::Quantized { weight, scales, biases, .. } => {
                weight.nbytes() + scales.nbytes() + biases.nbytes()
            }
        }
    }
}

pub(crate) struct Moe {
    router: Linear,
    /// The shared expert and its gate.
    shared: Option<(GatedMlp, Option<Linear>)>,
    /// `GroupedSigmoid`'s correction bias `[experts]`.
    correction: Option<Array>,
    gate_proj: SwitchLinear,
    up_proj: SwitchLinear,
    down_proj: SwitchLinear,
    spec: MoeSpec,
    silu: Silu,
}

impl Moe {
    /// Reads the router and the experts' `{gate,up,down}_proj` under `prefix` (names in `spec`).
    pub(crate) fn load(w: &mut WeightSet, prefix: &str, d: i32, spec: MoeSpec, q: Option<Quantization>) -> Result<Moe> {
        let (router, experts) = spec.names;
        let sw = format!("{prefix}.{experts}");
        let grouped = matches!(spec.routing, Routing::GroupedSigmoid { .. });
        let plain_router = spec.routing.groups().is_some();
        let router_at = format!("{prefix}.{router}");
        Ok(Moe {
            router: if plain_router {
                Linear::dense(w.take_shaped(&format!("{router_at}.weight"), &[spec.experts, d])?, None)
            } else {
                w.linear(&router_at, d, spec.experts, spec.bias, q)?
            },
            correction: if grouped {
                Some(w.take_shaped(&format!("{router_at}.e_score_correction_bias"), &[spec.experts])?)
            } else {
                None
            },
            shared: match spec.shared {
                Some(SharedExpert { width, gated }) => {
                    let name = if gated { "shared_expert" } else { "shared_experts" };
                    let mlp =
                        GatedMlp::load(w, &format!("{prefix}.{name}"), d, width, false, false, Activation::silu()?, q)?;
                    let gate = if gated {
                        Some(w.linear(&format!("{prefix}.shared_expert_gate"), d, 1, false, q)?)
                    } else {
                        None
                    };
                    Some((mlp, gate))
                }
                None => None,
            },
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
                let (indices, scores) = top_k(&ops::softmax_axis(&logits, -1, true)?, k)?;
                let scores = if renormalize { scores.divide(scores.sum_axis(-1, true)?)? } else { scores };
                (indices, scores)
            }
            Routing::TopKSoftmax { negated: true } => {
                let indices = argpartition_axis(&logits.negative()?, k - 1, -1)?.try_index((.., ..k))?;
                let scores = ops::softmax_axis(take_along_axis(&logits, &indices, -1)?, -1, true)?;
                (indices, scores)
            }
            Routing::TopKSoftmax { negated: false } => {
                let (indices, top) = top_k(&logits, k)?;
                (indices, ops::softmax_axis(top, -1, true)?)
            }
            Routing::GroupedSigmoid { groups, top_groups, renormalize, scale } => {
                let correction = self.correction.as_ref().expect("loaded with GroupedSigmoid");
                grouped_sigmoid(&logits, correction, k, (groups, top_groups), renormalize, scale)?
            }
            Routing::GroupedSoftmax { groups, top_groups, scale } => {
                grouped_softmax(&logits, k, (groups, top_groups), scale)?
            }
        };
        let weighted = self.forward_routed(x, &indices, &scores)?;
        match &self.shared {
            Some((mlp, Some(gate))) => Ok(weighted.add(ops::sigmoid(gate.forward(x)?)?.multiply(mlp.forward(x)?)?)?),
            Some((mlp, None)) => Ok(weighted.add(mlp.forward(x)?)?),
            None => Ok(weighted),
        }
    }

    /// The router's logits `[rows, experts]` (a family that routes in its own way: Gemma 4).
    pub(crate) fn router_logits(&self, x: &Array) -> Result<Array> {
        self.router.forward(x)
    }

    /// Each row of `x` through its experts `indices` `[rows, k]`, summed with weights `scores`.
    pub(crate) fn forward_routed(&self, x: &Array, indices: &Array, scores: &Array) -> Result<Array> {
        let y = self.experts(x, indices)?;
        Ok(y.multiply(ops::expand_dims(scores, -1)?)?.sum_axis(-2, false)?.as_dtype(y.dtype())?)
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
        let n = idx.shape()[0];
        let out = match side_stream() {
            // Many sorted position-expert pairs on a multi-core CPU: two halves on two MLX
            // streams (two threads). Each pair's products are the same numbers either way.
            Some(side) if sorted && n >= SPLIT_PAIRS && self.up_proj.is_quantized() => {
                let half = n / 2;
                let (x0, x1) = (x.try_index(..half)?, x.try_index(half..)?);
                let (i0, i1) = (idx.try_index(..half)?, idx.try_index(half..)?);
                let second = mlx_rs::with_stream(&side, || self.expert_mlps(&x1, &i1, true))?;
                ops::concatenate(&[self.expert_mlps(&x0, &i0, true)?, second], 0)?
            }
            _ => self.expert_mlps(&x, &idx, sorted)?,
        };
        Ok(match inverse {
            Some(inverse) => out.take_axis(&inverse, 0)?.reshape(&[rows, k, d])?,
            None => out.reshape(&[rows, k, d])?,
        })
    }

    /// The experts' gated MLPs for positions `x` and their experts `idx`.
    fn expert_mlps(&self, x: &Array, idx: &Array, sorted: bool) -> Result<Array> {
        let up = self.up_proj.forward(x, idx, sorted)?;
        let gate = self.gate_proj.forward(x, idx, sorted)?;
        let h = match self.spec.activation {
            ExpertActivation::Silu => self.silu.apply(&gate)?.multiply(&up)?,
            ExpertActivation::ClampedSwiglu => clamped_swiglu(&gate, &up)?,
            ExpertActivation::GeluTanh => Activation::GeluTanh.apply(&gate)?.multiply(&up)?,
        };
        self.down_proj.forward(&h, idx, sorted)
    }

    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        self.router.arrays(out);
        if let Some((mlp, gate)) = &self.shared {
            mlp.arrays(out);
            gate.iter().for_each(|g| g.arrays(out));
        }
        out.extend(&self.correction);
        for p in [&self.gate_proj, &self.up_proj, &self.down_proj] {
            p.arrays(out);
        }
    }

    pub(crate) fn nbytes(&self) -> usize {
        let shared =
            self.shared.as_ref().map_or(0, |(mlp, gate)| mlp.nbytes() + gate.as_ref().map_or(0, Linear::nbytes));
        shared
            + self.correction.as_ref().map_or(0, Array::nbytes)
            + self.router.nbytes()
            + [&self.gate_proj, &self.up_proj, &self.down_proj].iter().map(|p| p.nbytes()).sum::<usize>()
    }
}

/// mlx-lm's `group_expert_select`: each row's `k` experts and their weights (see
/// [`Routing::GroupedSigmoid`]).
fn grouped_sigmoid(
    logits: &Array,
    correction: &Array,
    k: i32,
    (groups, top_groups): (i32, i32),
    renormalize: bool,
    scale: f32,
) -> Result<(Array, Array)> {
    let original = ops::sigmoid(logits.as_dtype(mlx_rs::Dtype::Float32)?)?;
    let mut scores = original.add(correction)?;
    if groups > 1 {
        let (rows, e) = (scores.shape()[0], scores.shape()[1]);
        let grouped = scores.reshape(&[rows, groups, e / groups])?;
        let group_scores = ops::indexing::topk_axis(&grouped, 2, -1)?.sum_axis(-1, true)?;
        let dropped = groups - top_groups;
        let worst = argpartition_axis(&group_scores, dropped - 1, -2)?.try_index((.., ..dropped, ..))?;
        let zeroed = ops::indexing::put_along_axis(&grouped, &worst, Array::from_f32(0.0), -2)?;
        scores = zeroed.reshape(&[rows, e])?;
    }
    let indices = argpartition_axis(&scores.negative()?, k - 1, -1)?.try_index((.., ..k))?;
    let mut weights = take_along_axis(&original, &indices, -1)?;
    if k > 1 && renormalize {
        weights = weights.divide(weights.sum_axis(-1, true)?)?;
    }
    Ok((indices, weights.multiply(Array::from_f32(scale))?))
}

/// mlx-lm's DeepSeek-V2 `MoEGate`: each row's `k` experts and their weights (see
/// [`Routing::GroupedSoftmax`]).
fn grouped_softmax(logits: &Array, k: i32, (groups, top_groups): (i32, i32), scale: f32) -> Result<(Array, Array)> {
    let mut scores = ops::softmax_axis(logits, -1, true)?;
    let dropped = groups - top_groups;
    if groups > 1 && dropped > 0 {
        let (rows, e) = (scores.shape()[0], scores.shape()[1]);
        let grouped = scores.reshape(&[rows, groups, e / groups])?;
        let group_scores = grouped.max_axis(-1, true)?;
        let worst = argpartition_axis(&group_scores, dropped - 1, -2)?.try_index((.., ..dropped, ..))?;
        let zero = Array::from_f32(0.0).as_dtype(scores.dtype())?;
        scores = ops::indexing::put_along_axis(&grouped, &worst, &zero, -2)?.reshape(&[rows, e])?;
    }
    let indices = argpartition_axis(&scores.negative()?, k - 1, -1)?.try_index((.., ..k))?;
    let weights = take_along_axis(&scores, &indices, -1)?;
    // A Python float: weakly typed, the scores' dtype.
    Ok((indices, weights.multiply(Array::from_f32(scale).as_dtype(weights.dtype())?)?))
}

/// The `k` highest of each row's `logits` `[rows, experts]` as mlx-lm picks them
/// (`argpartition` at `-k`, the last `k`): their indices and values.
pub(crate) fn top_k(logits: &Array, k: i32) -> Result<(Array, Array)> {
    let e = logits.shape()[1];
    let indices = argpartition_axis(logits, -k, -1)?.try_index((.., e - k..))?;
    let top = take_along_axis(logits, &indices, -1)?;
    Ok((indices, top))
}

/// Sorted position-expert pairs from which quantized experts' products are split over two
/// streams (below it, the second thread's hand-off costs more than it saves). Dense experts are
/// not split: their products are OpenBLAS's, which already uses every core.
const SPLIT_PAIRS: i32 = 128;

thread_local! {
    /// A second MLX CPU stream of the engine thread (None on one core or the GPU).
    static SIDE: Option<mlx_rs::Stream> = {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores > 1 && super::on_cpu().unwrap_or(false)).then(|| mlx_rs::Stream::new_with_device(&mlx_rs::Device::cpu()))
    };
}

fn side_stream() -> Option<mlx_rs::Stream> {
    SIDE.with(|s| s.clone())
}

/// mlx-lm's `swiglu_oai` (alpha 1.702, limit 7), compiled as there, constants in the
/// activations' dtype (weakly typed Python scalars).
fn clamped_swiglu(gate: &Array, up: &Array) -> Result<Array> {
    let f = |(gate, up): (&Array, &Array)| -> std::result::Result<Array, mlx_rs::error::Exception> {
        let c = |v: f32| Array::from_f32(v).as_dtype(gate.dtype());
        let g = ops::minimum(gate, c(7.0)?)?;
        let x = ops::clip(up, (c(-7.0)?, c(7.0)?))?;
        x.add(c(1.0)?)?.multiply(g.multiply(ops::sigmoid(c(1.702)?.multiply(&g)?)?)?)
    };
    let mut compiled = mlx_rs::transforms::compile::compile(f, true);
    Ok(compiled((gate, up))?)
}
