//! The decoder-only transformer the families here are made of: embedding (optionally scaled),
//! blocks of attention and a gated MLP with their norms, the final norm and the vocabulary
//! projection (tied or not, optionally soft-capped). A family's module fills a [`DecoderSpec`]
//! from its config and weight names; the forward pass is written once, here.

use mlx_rs::{ops, Array, Dtype};

use super::arch::{Architecture, Pass};
use super::args::Args;
use super::attention::{Attention, AttentionLayout, Heads};
use super::blas::PassShape;
use super::gated_delta::{DeltaShape, GatedDelta};
use super::latent::{LatentAttention, LatentShape};
use super::layers::{Embedding, Linear, RmsNorm};
use super::mlp::{Activation, GatedMlp};
use super::moe::{Moe, MoeSpec};
use super::rope::{Rope, RopeSpec};
use super::weights::WeightSet;
use crate::cache::{AttentionSpec, CacheKind, LayerCaches};
use crate::config::{ModelConfig, Quantization};
use crate::error::Result;

/// How a block adds a branch back into the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Residual {
    /// `x + y`.
    Add,
    /// Gemma 3: float16 sums are taken in float32 and clipped to float16's range.
    ClipF16,
}

impl Residual {
    fn add(self, x: &Array, y: &Array) -> Result<Array> {
        if self == Residual::Add || x.dtype() != Dtype::Float16 {
            return Ok(x.add(y)?);
        }
        let bound = half::f16::MAX.to_f32();
        let sum = x.as_dtype(Dtype::Float32)?.add(y.as_dtype(Dtype::Float32)?)?;
        Ok(ops::clip(&sum, (Array::from_f32(-bound), Array::from_f32(bound)))?.as_dtype(Dtype::Float16)?)
    }
}

/// A block's token-mixing part.
pub(crate) enum Mixer {
    /// Softmax attention over the layer's keys and values.
    Attention(Attention),
    /// Gated delta linear attention over a recurrent state (Qwen3-Next).
    Delta(GatedDelta),
    /// Multi-head latent attention (DeepSeek-V3).
    Latent(LatentAttention),
}

/// What block `i` mixes tokens with: attention (its spec and RoPE index) or a gated delta layer.
pub(crate) enum Mixing {
    Attention(AttentionSpec, usize),
    Delta(DeltaShape),
    Latent(LatentShape),
}

/// A block's feed-forward part.
pub(crate) enum Ffn {
    /// One gated MLP.
    Dense(GatedMlp),
    /// Routed experts.
    Moe(Box<Moe>),
}

impl Ffn {
    fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Ffn::Dense(m) => m.forward(x),
            Ffn::Moe(m) => m.forward(x),
        }
    }

    fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        match self {
            Ffn::Dense(m) => m.arrays(out),
            Ffn::Moe(m) => m.arrays(out),
        }
    }

    fn nbytes(&self) -> usize {
        match self {
            Ffn::Dense(m) => m.nbytes(),
            Ffn::Moe(m) => m.nbytes(),
        }
    }
}

/// One block: `h = x + post_attn(attn(in_norm(x)))`, then `h + post_mlp(mlp(mlp_norm(h)))`
/// (the `post_*` norms only where a family has them: Gemma).
pub(crate) struct Block {
    pub(crate) mixer: Mixer,
    /// Index of this block's RoPE in the decoder's (Gemma 3: local or global base).
    pub(crate) rope: usize,
    pub(crate) mlp: Ffn,
    pub(crate) input_norm: RmsNorm,
    pub(crate) attn_out_norm: Option<RmsNorm>,
    pub(crate) mlp_norm: RmsNorm,
    pub(crate) mlp_out_norm: Option<RmsNorm>,
}

/// The vocabulary projection.
pub(crate) enum Head {
    /// The embedding's transpose.
    Tied,
    /// Its own weights.
    Linear(Linear),
}

/// Everything a decoder is made of.
pub(crate) struct DecoderSpec {
    pub(crate) embed: Embedding,
    /// Multiplies the embeddings (Gemma: √hidden, rounded as the family rounds it).
    pub(crate) embed_scale: Option<f32>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ropes: Vec<Rope>,
    pub(crate) norm: RmsNorm,
    pub(crate) head: Head,
    /// `tanh(logits / cap) · cap` (Gemma 2).
    pub(crate) final_softcap: Option<f32>,
    pub(crate) residual: Residual,
    pub(crate) pass: PassShape,
}

/// A [`DecoderSpec`] ready to run.
pub(crate) struct Decoder(DecoderSpec);

impl Decoder {
    pub(crate) fn new(spec: DecoderSpec) -> Result<Decoder> {
        let DecoderSpec { ropes, .. } = spec;
        let ropes = ropes.into_iter().map(Rope::with_table_on_cpu).collect::<Result<Vec<_>>>()?;
        Ok(Decoder(DecoderSpec { ropes, ..spec }))
    }
}

/// `x · s` with `s` in x's dtype (a Python scalar is weakly typed in mlx).
fn scaled(x: &Array, s: f32) -> Result<Array> {
    Ok(x.multiply(Array::from_f32(s).as_dtype(x.dtype())?)?)
}

impl Block {
    fn forward(
        &self,
        x: &Array,
        rows: (i32, i32),
        cache: &mut LayerCaches,
        rope: &super::rope::RopeAt,
        keep: Option<&Array>,
        residual: Residual,
    ) -> Result<Array> {
        let n = self.input_norm.forward(x)?;
        let r = match &self.mixer {
            Mixer::Attention(a) => a.forward(&n, rows, cache, rope)?,
            Mixer::Delta(d) => d.forward(&n, rows, cache)?,
            Mixer::Latent(a) => a.forward(&n, rows, cache, rope)?,
        };
        let r = match &self.attn_out_norm {
            Some(n) => n.forward(&r)?,
            None => r,
        };
        let h = match keep {
            Some(rows) => residual.add(&x.take_axis(rows, 0)?, &r)?,
            None => residual.add(x, &r)?,
        };
        let m = self.mlp.forward(&self.mlp_norm.forward(&h)?)?;
        let m = match &self.mlp_out_norm {
            Some(n) => n.forward(&m)?,
            None => m,
        };
        residual.add(&h, &m)
    }

    fn norms(&self) -> impl Iterator<Item = &RmsNorm> {
        [&self.input_norm, &self.mlp_norm].into_iter().chain(&self.attn_out_norm).chain(&self.mlp_out_norm)
    }
}

impl Architecture for Decoder {
    fn forward(&self, ids: &Array, pass: &mut Pass<'_, '_>) -> Result<Array> {
        let d = &self.0;
        let mut h = d.embed.forward(ids)?;
        if let Some(s) = d.embed_scale {
            h = scaled(&h, s)?;
        }
        let (positions, rows) = (pass.positions(), pass.rows);
        let ropes = d.ropes.iter().map(|r| r.for_pass(&positions, h.dtype())).collect::<Result<Vec<_>>>()?;
        let (n, context) = pass.work();
        d.pass.apply(n, context);
        for (j, block) in d.blocks.iter().enumerate() {
            let (mut cache, keep) = pass.layer(j);
            h = block.forward(&h, rows, &mut cache, &ropes[block.rope], keep.as_ref(), d.residual)?;
        }
        Ok(h)
    }

    fn final_norm(&self, h: &Array) -> Result<Array> {
        self.0.norm.forward(h)
    }

    fn logits(&self, h: &Array) -> Result<Array> {
        let d = &self.0;
        let logits = match &d.head {
            Head::Linear(head) => head.forward(h)?,
            Head::Tied => d.embed.as_linear(h)?,
        };
        match d.final_softcap {
            Some(cap) => {
                let c = Array::from_f32(cap).as_dtype(logits.dtype())?;
                Ok(ops::tanh(logits.divide(&c)?)?.multiply(&c)?)
            }
            None => Ok(logits),
        }
    }

    fn arrays(&self) -> Vec<&Array> {
        let d = &self.0;
        let mut out = vec![&d.norm.weight];
        d.embed.arrays(&mut out);
        if let Head::Linear(head) = &d.head {
            head.arrays(&mut out);
        }
        for b in &d.blocks {
            match &b.mixer {
                Mixer::Attention(a) => a.arrays(&mut out),
                Mixer::Delta(g) => g.arrays(&mut out),
                Mixer::Latent(a) => a.arrays(&mut out),
            }
            b.mlp.arrays(&mut out);
            out.extend(b.norms().map(|n| &n.weight));
        }
        out
    }

    fn weight_bytes(&self) -> usize {
        let d = &self.0;
        let mut bytes = d.embed.nbytes() + d.norm.weight.nbytes();
        if let Head::Linear(head) = &d.head {
            bytes += head.nbytes();
        }
        for b in &d.blocks {
            let mixer = match &b.mixer {
                Mixer::Attention(a) => a.nbytes(),
                Mixer::Delta(g) => g.nbytes(),
                Mixer::Latent(a) => a.nbytes(),
            };
            bytes += mixer + b.mlp.nbytes() + b.norms().map(|n| n.weight.nbytes()).sum::<usize>();
        }
        bytes
    }

    fn pass_shape(&self) -> PassShape {
        self.0.pass
    }

    fn cache_kinds(&self) -> Vec<CacheKind> {
        let kind = |b: &Block| match &b.mixer {
            Mixer::Attention(a) => a.window().map_or(CacheKind::Full, CacheKind::Window),
            Mixer::Delta(_) => CacheKind::Recurrent,
            Mixer::Latent(_) => CacheKind::Full,
        };
        self.0.blocks.iter().map(kind).collect()
    }

    fn dtype(&self) -> Dtype {
        self.0.norm.weight.dtype()
    }
}

/// How a family's checkpoint lays out its blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) attention: AttentionLayout,
    /// `gate_up_proj` fused in the checkpoint (Phi-3).
    pub(crate) fused_gate_up: bool,
    pub(crate) mlp_bias: bool,
    pub(crate) activation: Activation,
    /// Gemma's four norms per block (`input_layernorm`, `post_attention_layernorm` on the
    /// attention output, `pre_feedforward_layernorm`, `post_feedforward_layernorm`); else
    /// `input_layernorm` and `post_attention_layernorm` as the MLP's input norm.
    pub(crate) sandwich_norms: bool,
    /// Norms scale by `1 + w` (Gemma).
    pub(crate) norm_plus_one: bool,
}

impl Layout {
    /// Llama's: separate projections, SiLU, no biases, two plain norms per block.
    pub(crate) fn plain() -> Result<Layout> {
        Ok(Layout {
            attention: AttentionLayout::PLAIN,
            fused_gate_up: false,
            mlp_bias: false,
            activation: Activation::silu()?,
            sandwich_norms: false,
            norm_plus_one: false,
        })
    }
}

/// Reads blocks `model.layers.{i}` for `args`; `per_layer(i)` gives block `i`'s token mixing
/// (attention with its RoPE index, or gated delta), `experts(i)` its Mixture-of-Experts (the module name under the block,
/// and its shape) where it has one instead of a dense MLP. Reports progress from 0 to 1.
pub(crate) fn load_blocks(
    w: &mut WeightSet,
    args: &Args,
    q: Option<Quantization>,
    layout: Layout,
    per_layer: impl Fn(i32) -> Mixing,
    experts: impl Fn(i32) -> Option<(&'static str, MoeSpec)>,
    progress: &mut dyn FnMut(f32),
) -> Result<Vec<Block>> {
    let (d, eps, plus_one) = (args.hidden_size, args.rms_norm_eps, layout.norm_plus_one);
    let heads = Heads { q: args.num_heads, kv: args.num_kv_heads, dim: args.head_dim };
    let mut blocks = Vec::with_capacity(args.num_layers as usize);
    for i in 0..args.num_layers {
        let p = format!("model.layers.{i}");
        let (mixer, rope) = match per_layer(i) {
            Mixing::Attention(spec, rope) => {
                let a = Attention::load(w, &format!("{p}.self_attn"), d, heads, layout.attention, spec, eps, q)?;
                (Mixer::Attention(a), rope)
            }
            Mixing::Delta(shape) => {
                (Mixer::Delta(GatedDelta::load(w, &format!("{p}.linear_attn"), d, shape, eps, q)?), 0)
            }
            Mixing::Latent(shape) => {
                (Mixer::Latent(LatentAttention::load(w, &format!("{p}.self_attn"), d, shape, q)?), 0)
            }
        };
        let mlp = match experts(i) {
            Some((name, spec)) => Ffn::Moe(Box::new(Moe::load(w, &format!("{p}.{name}"), d, spec, q)?)),
            None => Ffn::Dense(GatedMlp::load(
                w,
                &format!("{p}.mlp"),
                d,
                args.intermediate_size,
                layout.mlp_bias,
                layout.fused_gate_up,
                layout.activation,
                q,
            )?),
        };
        let mut norm = |name: &str| w.norm(&format!("{p}.{name}"), d, eps, plus_one);
        let block = if layout.sandwich_norms {
            Block {
                mixer,
                rope,
                mlp,
                input_norm: norm("input_layernorm")?,
                attn_out_norm: Some(norm("post_attention_layernorm")?),
                mlp_norm: norm("pre_feedforward_layernorm")?,
                mlp_out_norm: Some(norm("post_feedforward_layernorm")?),
            }
        } else {
            Block {
                mixer,
                rope,
                mlp,
                input_norm: norm("input_layernorm")?,
                attn_out_norm: None,
                mlp_norm: norm("post_attention_layernorm")?,
                mlp_out_norm: None,
            }
        };
        blocks.push(block);
        progress((i + 1) as f32 / args.num_layers.max(1) as f32);
    }
    Ok(blocks)
}

/// The embedding, final norm and vocabulary projection (`lm_head` unless `tied`).
pub(crate) fn load_ends(
    w: &mut WeightSet,
    args: &Args,
    vocab: i32,
    q: Option<Quantization>,
    tied: bool,
    plus_one: bool,
) -> Result<(Embedding, RmsNorm, Head)> {
    let embed = w.embedding("model.embed_tokens", vocab, args.hidden_size, q)?;
    let norm = w.norm("model.norm", args.hidden_size, args.rms_norm_eps, plus_one)?;
    let head = if tied { Head::Tied } else { Head::Linear(w.linear("lm_head", args.hidden_size, vocab, false, q)?) };
    Ok((embed, norm, head))
}

/// OpenBLAS's view of a dense block of these widths.
pub(crate) fn pass_shape(args: &Args) -> PassShape {
    let (q, kv) = (args.num_heads * args.head_dim, args.num_kv_heads * args.head_dim);
    PassShape::new(args.hidden_size as usize, q as usize, kv as usize, args.intermediate_size as usize)
}

/// A decoder with one RoPE and full causal attention scaled by `head_dim^-0.5` in every block
/// (Llama, Mistral, Qwen2, Qwen3, Phi-3, Mixtral, Qwen3-MoE), `rope_dims` of each head rotated,
/// experts where `experts(i)` says.
pub(crate) fn uniform(
    config: &ModelConfig,
    w: WeightSet,
    args: &Args,
    layout: Layout,
    rope_dims: i32,
    experts: impl Fn(i32) -> Option<(&'static str, MoeSpec)>,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let spec =
        AttentionSpec { scale: (args.head_dim as f64).powf(-0.5) as f32, softcap: None, window: None, sinks: None };
    plain(config, w, args, layout, rope_dims, |_| Mixing::Attention(spec.clone(), 0), experts, progress)
}

/// A decoder with one RoPE (`rope_dims` rotated, the config's base and scaling), no embedding
/// scale or logit soft-cap, each block mixing as `mixing(i)` says and with experts where
/// `experts(i)` says (gpt-oss, Qwen3-Next, and [`uniform`]'s families).
#[allow(clippy::too_many_arguments)]
pub(crate) fn plain(
    config: &ModelConfig,
    mut w: WeightSet,
    args: &Args,
    layout: Layout,
    rope_dims: i32,
    mixing: impl Fn(i32) -> Mixing,
    experts: impl Fn(i32) -> Option<(&'static str, MoeSpec)>,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let q = config.quantization;
    let blocks = load_blocks(&mut w, args, q, layout, mixing, experts, progress)?;
    let tied = args.tie_word_embeddings;
    let (embed, norm, head) = load_ends(&mut w, args, config.vocab_size, q, tied, false)?;
    w.finish(tied)?;
    let rope = Rope::new(&RopeSpec {
        dims: rope_dims,
        base: args.rope_theta,
        traditional: args.rope_traditional,
        scaling: args.rope_scaling(config)?,
    })?;
    Ok(Box::new(Decoder::new(DecoderSpec {
        embed,
        embed_scale: None,
        blocks,
        ropes: vec![rope],
        norm,
        head,
        final_softcap: None,
        residual: Residual::Add,
        pass: pass_shape(args),
    })?))
}
