//! Qwen3-Next (mlx-lm's `models/qwen3_next.py`): hybrid layers — three gated delta linear
//! attention layers (gated_delta.rs) for every full attention layer (`full_attention_interval`),
//! the attention with q/k norms, partial rotary dimensions and a sigmoid output gate — and
//! routed experts with a gated shared expert (softmax over all experts, top k, optionally
//! renormalised).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{plain, Layout, Mixing};
use super::gated_delta::DeltaShape;
use super::moe::{ExpertActivation, MoeSpec, Routing, SharedExpert};
use super::registry::Family;
use super::weights::WeightSet;
use crate::cache::AttentionSpec;
use crate::config::ModelConfig;
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "qwen3_next",
    model_types: &["qwen3_next"],
    defaults: Defaults {
        rope_theta: 10_000.0,
        tie_word_embeddings: false,
        head_dim_required: true,
        rms_norm_eps: None,
    },
    build,
    tiny: r#"{"linear_num_value_heads": 4, "linear_num_key_heads": 2, "linear_key_head_dim": 16, "linear_value_head_dim": 16, "linear_conv_kernel_dim": 4, "num_experts": 4, "num_experts_per_tok": 2, "decoder_sparse_step": 1, "shared_expert_intermediate_size": 64, "mlp_only_layers": [], "moe_intermediate_size": 64, "rope_theta": 1000000.0, "partial_rotary_factor": 0.5, "full_attention_interval": 2, "norm_topk_prob": true}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    hybrid(config, args, w, Hybrid { separate_projections: false, norm_topk_prob: false, sparse_steps: true }, progress)
}

/// What differs between the Qwen3-Next line's checkpoints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hybrid {
    /// Qwen3.5's separate gated delta projections.
    pub(crate) separate_projections: bool,
    /// `norm_topk_prob`'s default.
    pub(crate) norm_topk_prob: bool,
    /// Experts only every `decoder_sparse_step`-th layer not in `mlp_only_layers` (Qwen3-Next);
    /// else in every layer when `num_experts` > 0 (Qwen3.5).
    pub(crate) sparse_steps: bool,
}

/// The Qwen3-Next line's decoder: gated delta layers with full attention every
/// `full_attention_interval`-th, dense MLPs or experts with a gated shared expert.
pub(crate) fn hybrid(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    variant: Hybrid,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let need = |key: &str| -> Result<i32> {
        match args.i32_or(key, 0) {
            v if v > 0 => Ok(v),
            v => Err(config.invalid(format!("`{key}` must be positive, got {v}"))),
        }
    };
    let delta = DeltaShape {
        k_heads: need("linear_num_key_heads")?,
        v_heads: need("linear_num_value_heads")?,
        k_dim: need("linear_key_head_dim")?,
        v_dim: need("linear_value_head_dim")?,
        kernel: need("linear_conv_kernel_dim")?,
        separate: variant.separate_projections,
    };
    if delta.v_heads % delta.k_heads != 0 {
        return Err(config.invalid(format!(
            "linear_num_value_heads ({}) is not a multiple of linear_num_key_heads ({})",
            delta.v_heads, delta.k_heads
        )));
    }
    let experts = args.i32_or("num_experts", 0);
    let moe = MoeSpec {
        experts,
        top_k: args.i32_or("num_experts_per_tok", 0),
        width: args.i32_or("moe_intermediate_size", 0),
        routing: Routing::SoftmaxTopK { renormalize: args.bool_or("norm_topk_prob", variant.norm_topk_prob) },
        names: ("gate", "switch_mlp"),
        bias: false,
        activation: ExpertActivation::Silu,
        shared: Some(args.i32_or("shared_expert_intermediate_size", 0))
            .filter(|w| *w > 0)
            .map(|width| SharedExpert { width, gated: true }),
    };
    if experts > 0 {
        moe.check(config)?;
    }
    let interval = args.i32_or("full_attention_interval", 4).max(1);
    let attention =
        AttentionSpec { scale: (args.head_dim as f64).powf(-0.5) as f32, softcap: None, window: None, sinks: None };
    let mixing = |i: i32| {
        if (i + 1) % interval != 0 {
            Mixing::Delta(delta)
        } else {
            Mixing::Attention(attention.clone(), 0)
        }
    };
    let sparse = |i: i32| !variant.sparse_steps || args.sparse_layer(i);
    let routed = |i: i32| (experts > 0 && sparse(i)).then_some(("mlp", moe));
    let bias = args.bool_or("attention_bias", false);
    let layout = Layout {
        attention: AttentionLayout {
            qkv_bias: bias,
            o_bias: bias,
            qk_norm: true,
            output_gate: true,
            ..AttentionLayout::PLAIN
        },
        ..Layout::plain()?
    };
    let rope_dims = args.rotary_dims(config, args.f32_or("partial_rotary_factor", 1.0))?;
    let args = Args { rope_traditional: false, ..args.clone() };
    plain(config, w, &args, layout, rope_dims, mixing, routed, progress)
}
