//! Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen3-Coder-30B-A3B): the Qwen3 block with routed
//! experts (softmax over all experts, the top k, optionally renormalised) in every
//! `decoder_sparse_step`-th layer not listed in `mlp_only_layers` (mlx-lm's
//! `models/qwen3_moe.py`).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{uniform, Layout};
use super::moe::{ExpertActivation, MoeSpec, Routing};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "qwen3_moe",
    model_types: &["qwen3_moe"],
    defaults: Defaults {
        rope_theta: 1_000_000.0,
        tie_word_embeddings: false,
        head_dim_required: true,
        rms_norm_eps: None,
    },
    build,
    tiny: r#"{"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64, "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": true, "rope_theta": 1000000.0}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let layout = Layout { attention: AttentionLayout { qk_norm: true, ..AttentionLayout::PLAIN }, ..Layout::plain()? };
    let spec = MoeSpec {
        experts: args.i32_or("num_experts", 0),
        top_k: args.i32_or("num_experts_per_tok", 0),
        width: args.i32_or("moe_intermediate_size", 0),
        routing: Routing::SoftmaxTopK { renormalize: args.bool_or("norm_topk_prob", false) },
        names: ("gate", "switch_mlp"),
        bias: false,
        activation: ExpertActivation::Silu,
        shared: None,
    };
    if spec.experts > 0 {
        spec.check(config)?;
    }
    let experts = |i: i32| (spec.experts > 0 && args.sparse_layer(i)).then_some(("mlp", spec));
    // mlx-lm's Qwen3-MoE rotates with a plain RoPE whatever rope_scaling says.
    let args = &Args { rope_scaling: Ok(RopeScaling::Default { scale: 1.0 }), rope_traditional: false, ..args.clone() };
    uniform(config, w, args, layout, args.head_dim, experts, progress)
}
