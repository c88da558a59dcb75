//! DeepSeek-V3 (mlx-lm's `models/deepseek_v3.py`): the Llama block with multi-head latent
//! attention (latent.rs: a low-rank key/value latent is what the cache holds; interleaved RoPE,
//! YaRN, on a few dimensions per head) and, from layer `first_k_dense_replace` on, experts
//! routed by sigmoid scores with a correction bias within the best expert groups, plus
//! always-on shared experts (laid out as DeepSeek-V2's). The output head is never tied. Kimi
//! K2.5 (`kimi_k25`) is this text model nested under `text_config`, its weights under
//! `language_model.` (the registry's nested config and weights.rs's prefix); its vision tower
//! is left alone.

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::decoder::{plain, Layout, Mixing};
use super::deepseek_v2::experts;
use super::latent::{Expansion, LatentShape};
use super::moe::Routing;
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::ModelConfig;
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "deepseek_v3",
    model_types: &["deepseek_v3", "kimi_k25"],
    defaults: Defaults {
        rope_theta: 10_000.0,
        tie_word_embeddings: false,
        head_dim_required: false,
        rms_norm_eps: Some(1e-6),
    },
    build,
    tiny: r#"{"q_lora_rank": 32, "kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32,
        "n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 32,
        "first_k_dense_replace": 1, "n_group": 2, "topk_group": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": true}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let method = args.rest.get("topk_method").and_then(|v| v.as_str()).unwrap_or("noaux_tc");
    if method != "noaux_tc" {
        return Err(config.invalid(format!("topk_method `{method}` is not supported (mlx-lm runs `noaux_tc` only)")));
    }
    let shape = LatentShape::read(config, args, Expansion::Absorbed)?;
    let routing = Routing::GroupedSigmoid {
        groups: args.i32_or("n_group", 1),
        top_groups: args.i32_or("topk_group", 1),
        renormalize: args.bool_or("norm_topk_prob", true),
        scale: args.f32_or("routed_scaling_factor", 1.0),
    };
    let experts = experts(config, args, routing)?;
    let args = &Args { rope_traditional: true, tie_word_embeddings: false, ..args.clone() };
    plain(config, w, args, Layout::plain()?, shape.rope, |_| Mixing::Latent(shape), experts, progress)
}
