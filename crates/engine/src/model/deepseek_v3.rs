//! DeepSeek-V3 (mlx-lm's `models/deepseek_v3.py`): the Llama block with multi-head latent
//! attention (latent.rs: a low-rank key/value latent is what the cache holds; interleaved RoPE,
//! YaRN, on a few dimensions per head) and, from layer `first_k_dense_replace` on, experts
//! routed by sigmoid scores with a correction bias within the best expert groups, plus
//! always-on shared experts. The output head is never tied. Kimi K2.5 (`kimi_k25`) is this text
//! model nested under `text_config`, its weights under `language_model.` (the registry's nested
//! config and weights.rs's prefix); its vision tower is left alone.

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::decoder::{plain, Layout, Mixing};
use super::latent::LatentShape;
use super::moe::{ExpertActivation, MoeSpec, Routing, SharedExpert};
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
    let int = |key: &str, default: i32| args.i32_or(key, default);
    let method = args.rest.get("topk_method").and_then(|v| v.as_str()).unwrap_or("noaux_tc");
    if method != "noaux_tc" {
        return Err(config.invalid(format!("topk_method `{method}` is not supported (mlx-lm runs `noaux_tc` only)")));
    }
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
    let shape = LatentShape {
        heads: args.num_heads,
        q_rank,
        kv_rank,
        nope,
        rope,
        v_dim,
        bias: args.bool_or("attention_bias", false),
        scale: scale as f32,
    };
    let experts = args.rest.get("n_routed_experts").and_then(|v| v.as_i64()).map(|e| e as i32);
    let width = int("moe_intermediate_size", 1407);
    let spec = experts.map(|experts| MoeSpec {
        experts,
        top_k: int("num_experts_per_tok", 1),
        width,
        routing: Routing::GroupedSigmoid {
            groups: int("n_group", 1),
            top_groups: int("topk_group", 1),
            renormalize: args.bool_or("norm_topk_prob", true),
            scale: args.f32_or("routed_scaling_factor", 1.0),
        },
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
        let Routing::GroupedSigmoid { groups, top_groups, .. } = spec.routing else { unreachable!("set above") };
        if groups < 1 || spec.experts % groups != 0 || top_groups < 1 || top_groups > groups {
            return Err(config.invalid(format!(
                "{} experts in {groups} groups, the best {top_groups} kept: not a valid grouping",
                spec.experts
            )));
        }
    }
    let (first_dense, freq) = (int("first_k_dense_replace", 0), int("moe_layer_freq", 1).max(1));
    let args = &Args { rope_traditional: true, tie_word_embeddings: false, ..args.clone() };
    plain(
        config,
        w,
        args,
        Layout::plain()?,
        rope,
        |_| Mixing::Latent(shape),
        |i| spec.filter(|_| i >= first_dense && i % freq == 0).map(|s| ("mlp", s)),
        progress,
    )
}
