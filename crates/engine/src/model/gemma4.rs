//! Gemma 4 text (mlx-lm's `models/gemma4_text.py`; the multimodal `gemma4` checkpoints nest it
//! in `text_config`). Its graph is not the shared decoder's, so it runs its own
//! [`Architecture`] from the shared blocks. Beyond Gemma 3: plain (`w`, not `1 + w`) RMS norms,
//! attention scale 1 with values RMS-normed without a scale, global layers with their own head
//! width, key/value heads and proportional RoPE (values = keys' projection with
//! `attention_k_eq_v`), the last `num_kv_shared_layers` layers attending over the keys and
//! values of the last earlier layer of their kind (they cache nothing), per-layer inputs (a
//! second embedding plus a projection of the hidden state, gated into every block), a learned
//! scalar per block, double-width MLPs in the KV-shared layers, and the MoE variant: a dense
//! MLP and routed experts side by side, the router reading the un-normed residual.

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::transforms::compile::compile;
use mlx_rs::{ops, Array, Dtype};

use super::arch::{Architecture, Pass};
use super::args::{Args, Defaults};
use super::attention::{Attention, AttentionLayout, Heads};
use super::blas::PassShape;
use super::decoder::{load_ends, pass_shape, Head};
use super::layers::{Embedding, Linear, RmsNorm};
use super::mlp::{Activation, GatedMlp};
use super::moe::{top_k, ExpertActivation, Moe, MoeSpec, Routing};
use super::registry::Family;
use super::rope::{Rope, RopeAt, RopeSpec};
use super::weights::WeightSet;
use crate::cache::{AttentionSpec, CacheKind};
use crate::config::{parse_rope_scaling, ModelConfig};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "gemma4_text",
    model_types: &["gemma4_text"],
    defaults: Defaults {
        rope_theta: 10_000.0,
        tie_word_embeddings: true,
        head_dim_required: true,
        rms_norm_eps: Some(1e-6),
    },
    build,
    tiny: r#"{"global_head_dim": 32, "sliding_window": 64, "sliding_window_pattern": 2, "num_kv_shared_layers": 0,
        "hidden_size_per_layer_input": 16, "vocab_size_per_layer_input": "vocab_size", "final_logit_softcapping": 30.0,
        "rope_parameters": {"full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
        "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}}}"#,
    nested_defaults: r#"{"num_attention_heads": 8, "num_key_value_heads": 1, "vocab_size": 262144}"#,
};

/// mlx-lm's `rope_parameters` when config.json has none.
const ROPE_PARAMETERS: &str = r#"{"full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0,
    "rope_type": "proportional"}, "sliding_attention": {"partial_rotary_factor": 1.0, "rope_theta": 10000.0,
    "rope_type": "default"}}"#;

/// The per-layer inputs: a second embedding and a projection of the scaled embedding, both
/// `[rows, layers · width]`, summed per layer after a norm of the projection.
struct PerLayerInputs {
    embed: Embedding,
    projection: Linear,
    norm: RmsNorm,
    width: i32,
}

/// A block's gate for its per-layer input: `h + norm(up(gelu(gate(h)) · input))`.
struct PerLayerGate {
    gate: Linear,
    up: Linear,
    norm: RmsNorm,
}

/// The MoE variant's extra parts: the router's norm weight (`scale · hidden^-½`) and
/// per-expert scale, the experts, and their norms.
struct Experts {
    moe: Moe,
    router_norm: Array,
    per_expert_scale: Array,
    top_k: i32,
    eps: f32,
    pre_norm: RmsNorm,
    post_norm_dense: RmsNorm,
    post_norm_experts: RmsNorm,
}

struct Block {
    attn: Attention,
    /// The block whose keys and values this one attends over (itself unless KV-shared).
    kv_from: usize,
    /// Index into the RoPEs (0 sliding, 1 full).
    rope: usize,
    mlp: GatedMlp,
    experts: Option<Experts>,
    input_norm: RmsNorm,
    attn_out_norm: RmsNorm,
    mlp_norm: RmsNorm,
    mlp_out_norm: RmsNorm,
    per_layer: Option<PerLayerGate>,
    scalar: Array,
}

struct Gemma4 {
    embed: Embedding,
    embed_scale: f32,
    per_layer: Option<PerLayerInputs>,
    blocks: Vec<Block>,
    ropes: Vec<Rope>,
    norm: RmsNorm,
    head: Head,
    softcap: Option<f32>,
    pass: PassShape,
}

fn build(
    config: &ModelConfig,
    args: &Args,
    mut w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let (q, d, eps, n) = (config.quantization, args.hidden_size, args.rms_norm_eps, args.num_layers);
    let pattern = args.i32_or("sliding_window_pattern", 5);
    if pattern < 1 {
        return Err(config.invalid(format!("`sliding_window_pattern` must be positive, got {pattern}")));
    }
    let sliding = args.sliding_layers(config, |i| i % pattern != pattern - 1)?;
    let window = args.sliding_window(config, 512)?;
    let shared = args.i32_or("num_kv_shared_layers", 20);
    let first_shared = n - shared;
    if shared < 0 || (shared > 0 && first_shared <= 0) {
        return Err(config.invalid(format!("`num_kv_shared_layers` ({shared}) must leave layers of their own")));
    }
    // A KV-shared layer reads the last earlier layer of its kind (mlx-lm's `previous_kvs`).
    let kv_from = |i: i32| -> Result<usize> {
        if i < first_shared {
            return Ok(i as usize);
        }
        (0..first_shared).rev().find(|&j| sliding[j as usize] == sliding[i as usize]).map(|j| j as usize).ok_or_else(
            || config.invalid(format!("KV-shared layer {i} has no earlier layer of its attention type to share")),
        )
    };
    let positive = |key: &str| args.rest.get(key).and_then(|v| v.as_i64()).filter(|&v| v > 0).map(|v| v as i32);
    // mlx-lm's default when the field is absent; null or 0 turns the feature off.
    let width_or = |key: &str, default: i32| match args.rest.get(key) {
        None => Some(default),
        Some(_) => positive(key),
    };
    let global_dim = width_or("global_head_dim", 512).unwrap_or(args.head_dim);
    let k_eq_v = args.bool_or("attention_k_eq_v", false);
    let global_kv = if k_eq_v { positive("num_global_key_value_heads") } else { None };
    let double_wide = args.bool_or("use_double_wide_mlp", true);
    let per_layer_width = width_or("hidden_size_per_layer_input", 256).unwrap_or(0);
    let experts = if args.bool_or("enable_moe_block", false) {
        let spec = MoeSpec {
            experts: positive("num_experts").unwrap_or(0),
            top_k: positive("top_k_experts").unwrap_or(0),
            width: positive("moe_intermediate_size").unwrap_or(0),
            // Routed in `Experts::forward`, not by the shared router.
            routing: Routing::TopKSoftmax { negated: false },
            names: ("router.proj", "experts.switch_glu"),
            bias: false,
            activation: ExpertActivation::GeluTanh,
            shared: None,
        };
        spec.check(config)?;
        Some(spec)
    } else {
        None
    };
    let mut blocks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let p = format!("model.layers.{i}");
        let slides = sliding[i as usize];
        let kv_shared = i >= first_shared && shared > 0;
        let heads = Heads {
            q: args.num_heads,
            kv: if slides { args.num_kv_heads } else { global_kv.unwrap_or(args.num_kv_heads) },
            dim: if slides { args.head_dim } else { global_dim },
        };
        let layout = AttentionLayout {
            qk_norm: true,
            v_norm: true,
            k_eq_v: k_eq_v && !slides,
            kv_shared,
            ..AttentionLayout::PLAIN
        };
        let spec = AttentionSpec { scale: 1.0, softcap: None, window: slides.then_some(window), sinks: None };
        let attn = Attention::load(&mut w, &format!("{p}.self_attn"), d, heads, layout, spec, eps, q)?;
        let width = args.intermediate_size * if double_wide && kv_shared { 2 } else { 1 };
        let mlp = GatedMlp::load(&mut w, &format!("{p}.mlp"), d, width, false, false, Activation::GeluTanh, q)?;
        let norm = |w: &mut WeightSet, name: &str, dim: i32| w.norm(&format!("{p}.{name}"), dim, eps, false);
        let experts = match experts {
            Some(spec) => Some(Experts {
                moe: Moe::load(&mut w, &p, d, spec, q)?,
                router_norm: {
                    let scale = w.take_shaped(&format!("{p}.router.scale"), &[d])?;
                    let root = Array::from_f32((d as f64).powf(-0.5) as f32).as_dtype(scale.dtype())?;
                    scale.multiply(root)?
                },
                per_expert_scale: w.take_shaped(&format!("{p}.router.per_expert_scale"), &[spec.experts])?,
                top_k: spec.top_k,
                eps,
                pre_norm: norm(&mut w, "pre_feedforward_layernorm_2", d)?,
                post_norm_dense: norm(&mut w, "post_feedforward_layernorm_1", d)?,
                post_norm_experts: norm(&mut w, "post_feedforward_layernorm_2", d)?,
            }),
            None => None,
        };
        let per_layer = if per_layer_width > 0 {
            Some(PerLayerGate {
                gate: w.linear(&format!("{p}.per_layer_input_gate"), d, per_layer_width, false, q)?,
                up: w.linear(&format!("{p}.per_layer_projection"), per_layer_width, d, false, q)?,
                norm: norm(&mut w, "post_per_layer_input_norm", d)?,
            })
        } else {
            None
        };
        blocks.push(Block {
            attn,
            kv_from: kv_from(i)?,
            rope: usize::from(!slides),
            mlp,
            experts,
            input_norm: norm(&mut w, "input_layernorm", d)?,
            attn_out_norm: norm(&mut w, "post_attention_layernorm", d)?,
            mlp_norm: norm(&mut w, "pre_feedforward_layernorm", d)?,
            mlp_out_norm: norm(&mut w, "post_feedforward_layernorm", d)?,
            per_layer,
            scalar: w.take_shaped(&format!("{p}.layer_scalar"), &[1])?,
        });
        progress((i + 1) as f32 / n as f32);
    }
    let per_layer = if per_layer_width > 0 {
        let all = n * per_layer_width;
        let vocab = match args.rest.get("vocab_size_per_layer_input").and_then(|v| v.as_i64()) {
            Some(v) if v > 0 => v as i32,
            None => 262_144,
            Some(v) => return Err(config.invalid(format!("`vocab_size_per_layer_input` must be positive, got {v}"))),
        };
        Some(PerLayerInputs {
            embed: w.embedding("model.embed_tokens_per_layer", vocab, all, q)?,
            projection: w.linear("model.per_layer_model_projection", d, all, false, q)?,
            norm: w.norm("model.per_layer_projection_norm", per_layer_width, eps, false)?,
            width: per_layer_width,
        })
    } else {
        None
    };
    let tied = args.tie_word_embeddings;
    let (embed, norm, head) = load_ends(&mut w, args, config.vocab_size, q, tied, false)?;
    w.finish(tied)?;
    let ropes = vec![
        rope(config, args, "sliding_attention", args.head_dim)?,
        rope(config, args, "full_attention", global_dim)?,
    ];
    let ropes = ropes.into_iter().map(Rope::with_table_on_cpu).collect::<Result<Vec<_>>>()?;
    let softcap = match args.rest.get("final_logit_softcapping") {
        Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| config.invalid("`final_logit_softcapping` is not a number"))? as f32),
        None => Some(30.0),
    };
    Ok(Box::new(Gemma4 {
        embed,
        embed_scale: (d as f64).sqrt() as f32,
        per_layer,
        blocks,
        ropes,
        norm,
        head,
        softcap,
        pass: pass_shape(args),
    }))
}

/// The RoPE of one attention type from `rope_parameters` (mlx-lm's `initialize_rope`):
/// `proportional` rotates a fraction of each head's pairs, the other types as elsewhere.
fn rope(config: &ModelConfig, args: &Args, kind: &str, dims: i32) -> Result<Rope> {
    let defaults: serde_json::Value = serde_json::from_str(ROPE_PARAMETERS).expect("JSON");
    let params = match args.rest.get("rope_parameters") {
        Some(serde_json::Value::Object(all)) => all.get(kind).cloned().unwrap_or_else(|| serde_json::json!({})),
        _ => defaults[kind].clone(),
    };
    let params = params.as_object().cloned().unwrap_or_default();
    let num = |key: &str, default: f64| params.get(key).and_then(|v| v.as_f64()).unwrap_or(default);
    let base = num("rope_theta", 10_000.0) as f32;
    let rope_type = params.get("type").or_else(|| params.get("rope_type")).and_then(|v| v.as_str());
    if rope_type == Some("proportional") {
        let rotated = (dims as f64 * num("partial_rotary_factor", 1.0)) as i32;
        if rotated > dims || rotated < 0 || rotated % 2 != 0 {
            return Err(config.invalid(format!("{kind}: partial_rotary_factor rotates {rotated} of {dims} dimensions")));
        }
        return Rope::proportional(dims, rotated, base, num("factor", 1.0) as f32, args.rope_traditional);
    }
    let scaling = parse_rope_scaling(Some(&params)).map_err(|m| config.invalid(format!("{kind}: {m}")))?;
    Rope::new(&RopeSpec { dims, base, traditional: args.rope_traditional, scaling })
}

/// `x · s` with `s` in x's dtype (a weakly typed Python scalar).
fn scaled(x: &Array, s: f64) -> Result<Array> {
    Ok(x.multiply(Array::from_f32(s as f32).as_dtype(x.dtype())?)?)
}

/// `tanh(x / cap) · cap`, compiled as mlx-lm's `logit_softcap`.
fn softcap(x: &Array, cap: f32) -> Result<Array> {
    let f = move |x: &Array| -> std::result::Result<Array, mlx_rs::error::Exception> {
        let c = Array::from_f32(cap).as_dtype(x.dtype())?;
        ops::tanh(x.divide(&c)?)?.multiply(&c)
    };
    let mut compiled = compile(f, true);
    Ok(compiled(x)?)
}

impl PerLayerInputs {
    /// Every layer's input `[rows, layers, width]` for token `ids` and the scaled embeddings `h`.
    fn inputs(&self, ids: &Array, h: &Array, layers: i32) -> Result<Array> {
        let rows = h.shape()[0];
        let embedded = scaled(&self.embed.forward(ids)?, (self.width as f64).sqrt())?;
        let embedded = embedded.reshape(&[rows, layers, self.width])?;
        let projected = scaled(&self.projection.forward(h)?, (h.shape()[1] as f64).powf(-0.5))?;
        let projected = self.norm.forward(&projected.reshape(&[rows, layers, self.width])?)?;
        scaled(&projected.add(&embedded)?, 0.5f64.sqrt())
    }
}

impl Experts {
    /// The routed experts' output for the residual stream `h`.
    fn forward(&self, h: &Array) -> Result<Array> {
        let routed = mlx_rs::fast::rms_norm(h, Some(&self.router_norm), self.eps)?;
        let (indices, top) = top_k(&self.moe.router_logits(&routed)?, self.top_k)?;
        let weights = ops::softmax_axis(&top, -1, false)?.multiply(self.per_expert_scale.take_axis(&indices, 0)?)?;
        let out = self.moe.forward_routed(&self.pre_norm.forward(h)?, &indices, &weights)?;
        self.post_norm_experts.forward(&out)
    }
}

impl Block {
    /// One block over `x` `[rows, hidden]`; `input` is its per-layer input `[rows, width]`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Array,
        rows: (i32, i32),
        pass: &mut Pass<'_, '_>,
        j: usize,
        rope: &RopeAt,
        input: Option<&Array>,
        kvs: &mut [Option<(Array, Array)>],
    ) -> Result<Array> {
        let (mut cache, keep) = pass.layer_reading(j, self.kv_from);
        let shared = if self.kv_from == j { None } else { kvs[self.kv_from].as_ref() };
        let (r, kv) = self.attn.forward_kv(&self.input_norm.forward(x)?, rows, &mut cache, rope, shared)?;
        if kv.is_some() {
            kvs[j] = kv;
        }
        let (x, input) = match &keep {
            Some(rows) => (x.take_axis(rows, 0)?, input.map(|i| i.take_axis(rows, 0)).transpose()?),
            None => (x.clone(), input.cloned()),
        };
        let h = x.add(self.attn_out_norm.forward(&r)?)?;
        let m = self.mlp.forward(&self.mlp_norm.forward(&h)?)?;
        let m = match &self.experts {
            Some(e) => e.post_norm_dense.forward(&m)?.add(e.forward(&h)?)?,
            None => m,
        };
        let mut h = h.add(self.mlp_out_norm.forward(&m)?)?;
        if let (Some(g), Some(input)) = (&self.per_layer, input) {
            let gate = Activation::GeluTanh.apply(&g.gate.forward(&h)?)?.multiply(&input)?;
            h = h.add(g.norm.forward(&g.up.forward(&gate)?)?)?;
        }
        Ok(h.multiply(&self.scalar)?)
    }

    fn nbytes(&self) -> usize {
        let norms = |n: &[&RmsNorm]| n.iter().map(|n| n.weight.nbytes()).sum::<usize>();
        let experts = self.experts.as_ref().map_or(0, |e| {
            e.moe.nbytes()
                + e.router_norm.nbytes()
                + e.per_expert_scale.nbytes()
                + norms(&[&e.pre_norm, &e.post_norm_dense, &e.post_norm_experts])
        });
        let per_layer = self.per_layer.as_ref().map_or(0, |g| g.gate.nbytes() + g.up.nbytes() + g.norm.weight.nbytes());
        self.attn.nbytes()
            + self.mlp.nbytes()
            + norms(&[&self.input_norm, &self.attn_out_norm, &self.mlp_norm, &self.mlp_out_norm])
            + self.scalar.nbytes()
            + experts
            + per_layer
    }

    fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        self.attn.arrays(out);
        self.mlp.arrays(out);
        out.extend([&self.input_norm, &self.attn_out_norm, &self.mlp_norm, &self.mlp_out_norm].map(|n| &n.weight));
        out.push(&self.scalar);
        if let Some(e) = &self.experts {
            e.moe.arrays(out);
            out.extend([&e.router_norm, &e.per_expert_scale]);
            out.extend([&e.pre_norm, &e.post_norm_dense, &e.post_norm_experts].map(|n| &n.weight));
        }
        if let Some(g) = &self.per_layer {
            g.gate.arrays(out);
            g.up.arrays(out);
            out.push(&g.norm.weight);
        }
    }
}

impl Architecture for Gemma4 {
    fn forward(&self, ids: &Array, pass: &mut Pass<'_, '_>) -> Result<Array> {
        let h = scaled(&self.embed.forward(ids)?, self.embed_scale as f64)?;
        let layers = self.blocks.len() as i32;
        let inputs = self.per_layer.as_ref().map(|p| p.inputs(ids, &h, layers)).transpose()?;
        let (positions, rows) = (pass.positions(), pass.rows);
        let ropes = self.ropes.iter().map(|r| r.for_pass(&positions, h.dtype())).collect::<Result<Vec<_>>>()?;
        let (n, context) = pass.work();
        self.pass.apply(n, context);
        let mut kvs: Vec<Option<(Array, Array)>> = vec![None; self.blocks.len()];
        let mut h = h;
        for (j, block) in self.blocks.iter().enumerate() {
            let input = inputs.as_ref().map(|all| all.try_index((.., j as i32, ..))).transpose()?;
            h = block.forward(&h, rows, pass, j, &ropes[block.rope], input.as_ref(), &mut kvs)?;
        }
        Ok(h)
    }

    fn final_norm(&self, h: &Array) -> Result<Array> {
        self.norm.forward(h)
    }

    fn logits(&self, h: &Array) -> Result<Array> {
        let logits = match &self.head {
            Head::Linear(head) => head.forward(h)?,
            Head::Tied => self.embed.as_linear(h)?,
        };
        match self.softcap {
            Some(cap) => softcap(&logits, cap),
            None => Ok(logits),
        }
    }

    fn arrays(&self) -> Vec<&Array> {
        let mut out = vec![&self.norm.weight];
        self.embed.arrays(&mut out);
        if let Head::Linear(head) = &self.head {
            head.arrays(&mut out);
        }
        if let Some(p) = &self.per_layer {
            p.embed.arrays(&mut out);
            p.projection.arrays(&mut out);
            out.push(&p.norm.weight);
        }
        self.blocks.iter().for_each(|b| b.arrays(&mut out));
        out
    }

    fn weight_bytes(&self) -> usize {
        let head = match &self.head {
            Head::Linear(head) => head.nbytes(),
            Head::Tied => 0,
        };
        let per_layer =
            self.per_layer.as_ref().map_or(0, |p| p.embed.nbytes() + p.projection.nbytes() + p.norm.weight.nbytes());
        let blocks = self.blocks.iter().map(Block::nbytes).sum::<usize>();
        self.embed.nbytes() + self.norm.weight.nbytes() + head + per_layer + blocks
    }

    fn pass_shape(&self) -> PassShape {
        self.pass
    }

    fn cache_kinds(&self) -> Vec<CacheKind> {
        // A KV-shared block keeps nothing of its own (its cache stays empty).
        let kind = |(j, b): (usize, &Block)| match b.attn.window() {
            Some(w) if b.kv_from == j => CacheKind::Window(w),
            _ => CacheKind::Full,
        };
        self.blocks.iter().enumerate().map(kind).collect()
    }

    fn dtype(&self) -> Dtype {
        self.norm.weight.dtype()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ModelConfig;

    fn layout(config: &str) -> Vec<(String, Vec<i32>)> {
        let config = ModelConfig::parse(config, std::path::Path::new("config.json")).expect("parses");
        crate::model::tensor_layout(&config).unwrap().into_iter().map(|t| (t.name, t.shape)).collect()
    }

    fn shape(layout: &[(String, Vec<i32>)], name: &str) -> Option<Vec<i32>> {
        // Dense matrices are named by their tensor (`….weight`), quantizable ones by module.
        layout.iter().find(|(n, _)| n == name || n.strip_suffix(".weight") == Some(name)).map(|(_, s)| s.clone())
    }

    /// mlx-lm's defaults (the E2B shape): 35 layers, every fifth global, the last 20 reading the
    /// keys and values of layers 13 (sliding) and 14 (global), double-width MLPs there.
    #[test]
    fn the_default_layout_shares_keys_and_values_as_mlx_lm_does() {
        let l = layout(
            r#"{"model_type": "gemma4", "text_config": {"model_type": "gemma4_text", "hidden_size": 1536,
            "num_hidden_layers": 35, "intermediate_size": 6144, "head_dim": 256}}"#,
        );
        assert_eq!(shape(&l, "model.layers.14.self_attn.k_proj"), Some(vec![512, 1536]), "global: 512-wide head");
        assert_eq!(shape(&l, "model.layers.13.self_attn.k_proj"), Some(vec![256, 1536]));
        assert_eq!(shape(&l, "model.layers.15.self_attn.k_proj"), None, "KV-shared from layer 15 on");
        assert_eq!(shape(&l, "model.layers.15.self_attn.q_proj"), Some(vec![8 * 256, 1536]));
        assert_eq!(shape(&l, "model.layers.19.self_attn.q_proj"), Some(vec![8 * 512, 1536]));
        assert_eq!(shape(&l, "model.layers.15.mlp.gate_proj"), Some(vec![2 * 6144, 1536]));
        assert_eq!(shape(&l, "model.embed_tokens_per_layer"), Some(vec![262_144, 35 * 256]));
    }

    /// The MoE layout: a router and experts beside the dense MLP; values = keys in global layers.
    #[test]
    fn the_moe_layout_reads_router_experts_and_no_global_v_proj() {
        let l = layout(
            r#"{"model_type": "gemma4_text", "hidden_size": 128, "num_hidden_layers": 6, "intermediate_size": 256,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "global_head_dim": 64,
            "vocab_size": 1000, "num_kv_shared_layers": 0, "hidden_size_per_layer_input": 0,
            "attention_k_eq_v": true, "num_global_key_value_heads": 1, "enable_moe_block": true,
            "num_experts": 8, "top_k_experts": 2, "moe_intermediate_size": 64}"#,
        );
        assert_eq!(shape(&l, "model.layers.4.self_attn.v_proj"), None);
        assert_eq!(shape(&l, "model.layers.4.self_attn.k_proj"), Some(vec![64, 128]));
        assert_eq!(shape(&l, "model.layers.3.self_attn.v_proj"), Some(vec![64, 128]));
        assert_eq!(shape(&l, "model.layers.0.router.proj"), Some(vec![8, 128]));
        assert_eq!(shape(&l, "model.layers.0.experts.switch_glu.gate_proj"), Some(vec![8, 64, 128]));
        assert_eq!(shape(&l, "model.layers.0.router.per_expert_scale"), Some(vec![8]));
    }

    #[test]
    fn sharing_needs_an_earlier_layer_of_the_same_kind() {
        let bad = r#"{"model_type": "gemma4_text", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
            "num_attention_heads": 4, "head_dim": 16, "vocab_size": 100, "sliding_window_pattern": 2,
            "num_kv_shared_layers": 1}"#;
        let err = ModelConfig::parse(bad, std::path::Path::new("config.json")).unwrap_err();
        assert!(err.to_string().contains("no earlier layer"), "{err}");
    }
}
