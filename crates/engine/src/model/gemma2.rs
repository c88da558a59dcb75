//! Gemma 2 (mlx-lm's `models/gemma2.py`): `1 + w` RMS norms around both the attention and the
//! MLP, GELU (tanh), embeddings scaled by √hidden, soft-capped attention scores and logits, a
//! query scale from `query_pre_attn_scalar`, the embedding as the output projection. As in
//! mlx-lm, every layer attends to the whole context (its sliding window is not applied).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{load_blocks, load_ends, pass_shape, Decoder, DecoderSpec, Layout, Mixing, Residual};
use super::mlp::Activation;
use super::registry::Family;
use super::rope::{Rope, RopeSpec};
use super::weights::WeightSet;
use crate::cache::AttentionSpec;
use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "gemma2",
    model_types: &["gemma2"],
    defaults: Defaults { rope_theta: 10_000.0, tie_word_embeddings: true, head_dim_required: true, rms_norm_eps: None },
    build,
    tiny: r#"{"query_pre_attn_scalar": 16}"#,
    nested_defaults: "{}",
};

/// Gemma's block layout (Gemma 2 and 3): sandwich norms scaling by `1 + w`, GELU (tanh).
pub(crate) fn gemma_layout(qk_norm: bool) -> Layout {
    Layout {
        attention: AttentionLayout { qk_norm, norm_plus_one: true, ..AttentionLayout::PLAIN },
        fused_gate_up: false,
        mlp_bias: false,
        activation: Activation::GeluTanh,
        sandwich_norms: true,
        norm_plus_one: true,
    }
}

fn build(
    config: &ModelConfig,
    args: &Args,
    mut w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let q = config.quantization;
    let spec = AttentionSpec {
        scale: (1.0 / (args.f32_or("query_pre_attn_scalar", 144.0) as f64).sqrt()) as f32,
        softcap: Some(args.f32_or("attn_logit_softcapping", 50.0)),
        window: None,
        sinks: None,
    };
    let blocks =
        load_blocks(&mut w, args, q, gemma_layout(false), |_| Mixing::Attention(spec.clone(), 0), |_| None, progress)?;
    let (embed, norm, head) = load_ends(&mut w, args, config.vocab_size, q, true, true)?;
    w.finish(true)?;
    let rope = Rope::new(&RopeSpec {
        dims: args.head_dim,
        base: args.rope_theta,
        traditional: args.rope_traditional,
        scaling: RopeScaling::Default { scale: 1.0 },
    })?;
    Ok(Box::new(Decoder::new(DecoderSpec {
        embed,
        embed_scale: Some((args.hidden_size as f64).sqrt() as f32),
        blocks,
        ropes: vec![rope],
        norm,
        head,
        final_softcap: Some(args.f32_or("final_logit_softcapping", 30.0)),
        residual: Residual::Add,
        pass: pass_shape(args),
    })?))
}
