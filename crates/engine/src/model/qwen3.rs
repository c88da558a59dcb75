//! Qwen3 (dense): per-head RMS norms of queries and keys, an explicit head width, no biases
//! (mlx-lm's `models/qwen3.py`).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{uniform, Layout};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::ModelConfig;
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
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let layout = Layout { attention: AttentionLayout { qk_norm: true, ..AttentionLayout::PLAIN }, ..Layout::plain()? };
    uniform(config, w, args, layout, args.head_dim, |_| None, progress)
}
