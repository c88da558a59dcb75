//! Llama 1/2/3 (Llama 3 RoPE scaling included) and Mistral, which uses the same graph
//! (mlx-lm's `models/llama.py`).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{plain, Layout, Mixing};
use super::registry::Family;
use super::weights::WeightSet;
use crate::cache::AttentionSpec;
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
    // `layer_types` may make some layers slide over `sliding_window` positions.
    let sliding = args.sliding_layers(config, |_| false)?;
    let full =
        AttentionSpec { scale: (args.head_dim as f64).powf(-0.5) as f32, softcap: None, window: None, sinks: None };
    let window = if sliding.contains(&true) { Some(args.sliding_window(config, 0)?) } else { None };
    let mixing =
        |i: i32| Mixing::Attention(AttentionSpec { window: window.filter(|_| sliding[i as usize]), ..full.clone() }, 0);
    plain(config, w, args, layout, args.head_dim, mixing, |_| None, progress)
}
