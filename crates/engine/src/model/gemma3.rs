//! Gemma 3 text (mlx-lm's `models/gemma3_text.py`): Gemma's block with per-head q/k norms,
//! sliding-window attention in all but every `sliding_window_pattern`-th layer (those local
//! layers rotate with `rope_local_base_freq`, the global ones with `rope_theta` and its
//! scaling), float16 residual sums clipped in float32, the embedding tied unless the checkpoint
//! has an `lm_head`.

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::decoder::{load_blocks, load_ends, pass_shape, Decoder, DecoderSpec, Mixing, Residual};
use super::gemma2::gemma_layout;
use super::registry::Family;
use super::rope::{Rope, RopeSpec};
use super::weights::WeightSet;
use crate::cache::AttentionSpec;
use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "gemma3_text",
    model_types: &["gemma3_text"],
    defaults: Defaults {
        rope_theta: 1_000_000.0,
        tie_word_embeddings: true,
        head_dim_required: true,
        rms_norm_eps: Some(1e-6),
    },
    build,
    tiny: r#"{"query_pre_attn_scalar": 16, "sliding_window": 64, "sliding_window_pattern": 2, "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0}"#,
    nested_defaults: r#"{"num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256, "vocab_size": 262208}"#,
};

fn build(
    config: &ModelConfig,
    args: &Args,
    mut w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let q = config.quantization;
    let pattern = args.i32_or("sliding_window_pattern", 6);
    if pattern < 1 {
        return Err(config.invalid(format!("`sliding_window_pattern` must be positive, got {pattern}")));
    }
    let window = args.sliding_window(config, 512)?;
    let scale = (args.f32_or("query_pre_attn_scalar", 256.0) as f64).powf(-0.5) as f32;
    let global = AttentionSpec { scale, softcap: None, window: None, sinks: None };
    let local = AttentionSpec { window: Some(window), ..global.clone() };
    // RoPE 0: global layers; 1: local (sliding) layers.
    let per_layer = |i: i32| {
        if i % pattern == pattern - 1 {
            Mixing::Attention(global.clone(), 0)
        } else {
            Mixing::Attention(local.clone(), 1)
        }
    };
    let blocks = load_blocks(&mut w, args, q, gemma_layout(true), per_layer, |_| None, progress)?;
    let tied = !w.has_prefix("lm_head");
    let (embed, norm, head) = load_ends(&mut w, args, config.vocab_size, q, tied, true)?;
    w.finish(tied)?;
    let rope = |base: f32, scaling: RopeScaling| {
        Rope::new(&RopeSpec { dims: args.head_dim, base, traditional: false, scaling })
    };
    let ropes = vec![
        rope(args.rope_theta, args.rope_scaling(config)?)?,
        rope(args.f32_or("rope_local_base_freq", 10_000.0), RopeScaling::Default { scale: 1.0 })?,
    ];
    // mlx-lm rounds √hidden to bfloat16 before scaling in the activations' dtype.
    let embed_scale = half::bf16::from_f32((args.hidden_size as f64).sqrt() as f32).to_f32();
    Ok(Box::new(Decoder::new(DecoderSpec {
        embed,
        embed_scale: Some(embed_scale),
        blocks,
        ropes,
        norm,
        head,
        final_softcap: None,
        residual: Residual::ClipF16,
        pass: pass_shape(args),
    })?))
}
