//! Qwen2 and Qwen2.5: the Llama graph with a bias on the q, k and v projections
//! (mlx-lm's `models/qwen2.py`).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{uniform, Layout};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::ModelConfig;
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "qwen2",
    model_types: &["qwen2"],
    defaults: Defaults {
        rope_theta: 1_000_000.0,
        tie_word_embeddings: true,
        head_dim_required: false,
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
    let layout = Layout { attention: AttentionLayout { qkv_bias: true, ..AttentionLayout::PLAIN }, ..Layout::plain()? };
    uniform(config, w, args, layout, args.head_dim, |_| None, progress)
}
