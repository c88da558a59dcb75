//! Qwen3 (dense): per-head RMS norms of queries and keys, an explicit head width, no biases
//! (mlx-lm's `models/qwen3.py`).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{uniform, Layout};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::{parse_rope_scaling, ModelConfig};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "qwen3",
    model_types: &["qwen3"],
    defaults: Defaults {
        rope_theta: 1_000_000.0,
        tie_word_embeddings: true,
        head_dim_required: true,
        rms_norm_eps: None,
    },
    build,
    tiny: r#"{"rope_theta": 1000000.0}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let layout = Layout { attention: AttentionLayout { qk_norm: true, ..AttentionLayout::PLAIN }, ..Layout::plain()? };
    // transformers ≥ 5 nests rope_theta and rope_scaling under rope_parameters (mlx-lm reads
    // them there when the top-level ones are absent).
    let mut args = args.clone();
    if let Some(params) = args.rest.get("rope_parameters").and_then(|v| v.as_object()).cloned() {
        if !config.args.get("rope_theta").is_some_and(|v| v.is_number()) {
            if let Some(theta) = params.get("rope_theta").and_then(|v| v.as_f64()) {
                args.rope_theta = theta as f32;
            }
        }
        if config.args.get("rope_scaling").is_none_or(|v| v.is_null()) {
            args.rope_scaling = parse_rope_scaling(Some(&params));
        }
    }
    uniform(config, w, &args, layout, args.head_dim, |_| None, progress)
}
