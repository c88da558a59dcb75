//! Qwen3.5 text (`qwen3_5`, `qwen3_5_moe`; mlx-lm's `models/qwen3_5.py`): the Qwen3-Next hybrid
//! (qwen3_next.rs) with separate gated delta projections, RoPE settings under
//! `rope_parameters`, experts in every layer when the model has them, and the text model's
//! weights under `language_model.` (weights.rs finds the prefix; vision weights are ignored).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::qwen3_next::{hybrid, Hybrid};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::{parse_rope_scaling, ModelConfig};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "qwen3_5",
    model_types: &["qwen3_5", "qwen3_5_moe", "qwen3_5_text", "qwen3_5_moe_text"],
    defaults: Defaults {
        rope_theta: 100_000.0,
        tie_word_embeddings: false,
        head_dim_required: false,
        rms_norm_eps: Some(1e-6),
    },
    build,
    tiny: r#"{"linear_num_value_heads": 4, "linear_num_key_heads": 2, "linear_key_head_dim": 16, "linear_value_head_dim": 16, "linear_conv_kernel_dim": 4, "full_attention_interval": 2, "rope_parameters": {"type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.5}}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    // mlx-lm reads RoPE from `rope_parameters` only, with its own defaults when absent.
    let mut args = args.clone();
    let params = args.rest.get("rope_parameters").and_then(|v| v.as_object()).cloned().unwrap_or_default();
    let num = |key: &str, default: f64| params.get(key).and_then(|v| v.as_f64()).unwrap_or(default);
    args.rope_theta = num("rope_theta", 100_000.0) as f32;
    args.rest.insert("partial_rotary_factor".into(), num("partial_rotary_factor", 0.25).into());
    args.rope_scaling = parse_rope_scaling(Some(&params)).map_err(|m| format!("rope_parameters: {m}"));
    hybrid(config, &args, w, Hybrid { separate_projections: true, norm_topk_prob: true, sparse_steps: false }, progress)
}
