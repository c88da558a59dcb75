//! gpt-oss (mlx-lm's `models/gpt_oss.py`): biased q/k/v/o projections, per-head attention
//! sinks, sliding-window and full attention by `layer_types` (alternating by default), YaRN RoPE,
//! and routed experts in every layer (biased router, top k then softmax, clamped SwiGLU with
//! biases). MXFP4 checkpoints are refused with a typed error naming the mode (config.rs).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{plain, Layout, Mixing};
use super::moe::{ExpertActivation, MoeSpec, Routing};
use super::registry::Family;
use super::weights::WeightSet;
use crate::cache::AttentionSpec;
use crate::config::ModelConfig;
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "gpt_oss",
    model_types: &["gpt_oss"],
    defaults: Defaults {
        rope_theta: 150_000.0,
        tie_word_embeddings: false,
        head_dim_required: true,
        rms_norm_eps: Some(1e-5),
    },
    build,
    tiny: r#"{"num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": 64, "rope_theta": 150000, "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": 4096}}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let moe = MoeSpec {
        experts: args.i32_or("num_local_experts", 128),
        top_k: args.i32_or("num_experts_per_tok", 4),
        width: args.intermediate_size,
        routing: Routing::TopKSoftmax { negated: false },
        names: ("router", "experts"),
        bias: true,
        activation: ExpertActivation::ClampedSwiglu,
        shared: None,
    };
    moe.check(config)?;
    let sliding = args.sliding_layers(config, |i| i % 2 == 0)?;
    let full =
        AttentionSpec { scale: (1.0 / (args.head_dim as f64).sqrt()) as f32, softcap: None, window: None, sinks: None };
    let window = AttentionSpec { window: Some(args.sliding_window(config, 128)?), ..full.clone() };
    let per_layer = |i: i32| Mixing::Attention(if sliding[i as usize] { window.clone() } else { full.clone() }, 0);
    let layout = Layout {
        attention: AttentionLayout { qkv_bias: true, o_bias: true, sinks: true, ..AttentionLayout::PLAIN },
        ..Layout::plain()?
    };
    // gpt-oss has no tied variant and no traditional RoPE.
    let args = Args { tie_word_embeddings: false, rope_traditional: false, ..args.clone() };
    plain(config, w, &args, layout, args.head_dim, per_layer, |_| Some(("mlp", moe)), progress)
}
