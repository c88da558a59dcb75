//! DeepSeek-V2 (mlx-lm's `models/deepseek_v2.py`): the Llama block with multi-head latent
//! attention whose latent is taken out to per-head keys and values by one `kv_b_proj` (latent.rs's
//! projected expansion; interleaved YaRN on a few dimensions per head, applied whatever
//! `rope_scaling`'s type says, as mlx-lm does) and, from layer `first_k_dense_replace` on,
//! experts routed by softmax scores — the best k of all (`topk_method` "greedy") or of the best
//! expert groups ("group_limited_greedy"), times `routed_scaling_factor` — plus always-on shared
//! experts. The output head is never tied. DeepSeek-V3 (deepseek_v3.rs) shares its experts'
//! layout ([`experts`]).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::decoder::{plain, Layout, Mixing};
use super::latent::{Expansion, LatentShape};
use super::moe::{ExpertActivation, MoeSpec, Routing, SharedExpert};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::{parse_rope_scaling, ModelConfig, RopeScaling};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "deepseek_v2",
    model_types: &["deepseek_v2"],
    defaults: Defaults {
        rope_theta: 10_000.0,
        tie_word_embeddings: false,
        head_dim_required: false,
        rms_norm_eps: Some(1e-6),
    },
    build,
    tiny: r#"{"q_lora_rank": 32, "kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 16,
        "n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 32,
        "first_k_dense_replace": 1, "topk_method": "group_limited_greedy", "n_group": 2, "topk_group": 1,
        "routed_scaling_factor": 2.0,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024, "mscale_all_dim": 0.8}}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let shape = LatentShape::read(config, args, Expansion::Projected)?;
    // mlx-lm groups experts for "group_limited_greedy" only; any other method (its default is
    // spelled "gready") picks from all of them.
    let method = args.rest.get("topk_method").and_then(|v| v.as_str()).unwrap_or("gready");
    let (groups, top_groups) = if method == "group_limited_greedy" {
        let need =
            |key: &str| {
                args.rest.get(key).and_then(|v| v.as_i64()).map(|v| v as i32).ok_or_else(|| {
                    config.invalid(format!("topk_method `group_limited_greedy` needs an integer `{key}`"))
                })
            };
        (need("n_group")?, need("topk_group")?)
    } else {
        (1, 1)
    };
    let routing = Routing::GroupedSoftmax { groups, top_groups, scale: args.f32_or("routed_scaling_factor", 1.0) };
    let experts = experts(config, args, routing)?;
    let args =
        &Args { rope_traditional: true, tie_word_embeddings: false, rope_scaling: Ok(yarn(config)?), ..args.clone() };
    plain(config, w, args, Layout::plain()?, shape.rope, |_| Mixing::Latent(shape), experts, progress)
}

/// `rope_scaling` read as YaRN whatever its type (mlx-lm's `DeepseekV2YarnRotaryEmbedding`
/// takes its fields, with the same defaults); required, as there.
fn yarn(config: &ModelConfig) -> Result<RopeScaling> {
    let Some(map) = config.args.get("rope_scaling").and_then(|v| v.as_object()) else {
        return Err(config.invalid("missing `rope_scaling` (DeepSeek-V2 always applies YaRN)"));
    };
    let mut map = map.clone();
    map.insert("type".into(), "yarn".into());
    parse_rope_scaling(Some(&map)).map_err(|m| config.invalid(m))
}

/// DeepSeek's experts (V2 and V3): `n_routed_experts` (none: every block dense) of width
/// `moe_intermediate_size`, `num_experts_per_tok` per position, routed by `routing`, with
/// `n_shared_experts` always-on experts as one MLP; in the blocks from `first_k_dense_replace`
/// on, every `moe_layer_freq`-th. Returns each block's MoE (None: a dense MLP), checked.
pub(crate) fn experts(
    config: &ModelConfig,
    args: &Args,
    routing: Routing,
) -> Result<impl Fn(i32) -> Option<(&'static str, MoeSpec)>> {
    let int = |key: &str, default: i32| args.i32_or(key, default);
    let width = int("moe_intermediate_size", 1407);
    let spec = args.rest.get("n_routed_experts").and_then(|v| v.as_i64()).map(|experts| MoeSpec {
        experts: experts as i32,
        top_k: int("num_experts_per_tok", 1),
        width,
        routing,
        names: ("gate", "switch_mlp"),
        bias: false,
        activation: ExpertActivation::Silu,
        shared: args
            .rest
            .get("n_shared_experts")
            .and_then(|v| v.as_i64())
            .map(|n| SharedExpert { width: width * n as i32, gated: false }),
    });
    if let Some(spec) = &spec {
        spec.check(config)?;
    }
    let (first_dense, freq) = (int("first_k_dense_replace", 0), int("moe_layer_freq", 1).max(1));
    Ok(move |i: i32| spec.filter(|_| i >= first_dense && i % freq == 0).map(|s| ("mlp", s)))
}
