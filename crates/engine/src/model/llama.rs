//! Llama 1/2/3 (Llama 3 RoPE scaling included) and Mistral, which uses the same graph
//! (mlx-lm's `models/llama.py`).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{uniform, Layout};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::ModelConfig;
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "llama",
    model_types: &["llama", "mistral"],
    defaults: Defaults {
        rope_theta: 10_000.0,
        tie_word_embeddings: true,
        head_dim_required: false,
        rms_norm_eps: None,
    },
    build,
    tiny: r#"{"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 256}}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let bias = args.bool_or("attention_bias", false);
    let layout = Layout {
        attention: AttentionLayout { qkv_bias: bias, o_bias: bias, ..AttentionLayout::PLAIN },
        mlp_bias: args.bool_or("mlp_bias", false),
        ..Layout::plain()?
    };
    uniform(config, w, args, layout, args.head_dim, |_| None, progress)
}
