//! Mixtral: the Llama/Mistral block with routed experts in every layer (the top k router logits,
//! a softmax over those) under `block_sparse_moe` (mlx-lm's `models/mixtral.py`).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::decoder::{uniform, Layout};
use super::moe::{ExpertActivation, MoeSpec, Routing};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "mixtral",
    model_types: &["mixtral"],
    defaults: Defaults {
        rope_theta: 1_000_000.0,
        tie_word_embeddings: false,
        head_dim_required: false,
        rms_norm_eps: Some(1e-5),
    },
    build,
    tiny: r#"{"num_local_experts": 4, "num_experts_per_tok": 2, "rope_theta": 1000000.0}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    // mlx-lm's Mixtral: head width hidden / heads, plain RoPE (its rope_scaling is not applied).
    let args = &Args { rope_scaling: Ok(RopeScaling::Default { scale: 1.0 }), ..args.head_dim_from_hidden(config)? };
    let spec = MoeSpec {
        experts: args.i32_or("num_local_experts", 8),
        top_k: args.i32_or("num_experts_per_tok", 2),
        width: args.intermediate_size,
        routing: Routing::TopKSoftmax { negated: true },
        names: ("gate", "switch_mlp"),
        bias: false,
        activation: ExpertActivation::Silu,
        shared: None,
    };
    spec.check(config)?;
    uniform(config, w, args, Layout::plain()?, args.head_dim, |_| Some(("block_sparse_moe", spec)), progress)
}
