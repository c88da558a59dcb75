//! Writes tiny random-weight models in the standard Hugging Face / mlx-community folder layout
//! (config.json, safetensors, tokenizer.json, tokenizer_config.json with a chat template),
//! deterministic from a seed. Tests, benchmarks and the app's bundled default model use them:
//! no model can be downloaded on the machines this project is built on.
//!
//! The llama/qwen2/qwen3 generator here is plain Rust (no MLX): quantization writes the same
//! affine format MLX's `quantize` produces (per-group scale and bias, values packed
//! little-end-first into u32 words). The other families' generator (family.rs) lists their
//! tensors by running the family's builder, which makes lazy MLX arrays: call it from one
//! thread that owns MLX (the CLI's `make-tiny-model` process), never beside a running engine.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerBuilder,
};

use crate::error::{EngineError, Result};

mod family;
mod scripted;
pub use family::{write_family_model, write_family_model_with};
pub use scripted::{write_scripted_model, write_templated_model, AGENT_SCRIPT, THINKER_SCRIPT};

/// Which architecture to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyFamily {
    /// `llama` with Llama 3 rope scaling and Llama 3 style special tokens and template.
    Llama,
    /// `qwen2` (q/k/v bias) with ChatML tokens and template.
    Qwen2,
    /// `qwen3` (q/k norms) with ChatML tokens and template.
    Qwen3,
}

/// Storage dtype of the float weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyDtype {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

/// Shape and options of a generated model.
#[derive(Debug, Clone)]
pub struct TinySpec {
    /// Architecture.
    pub family: TinyFamily,
    /// Residual width.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (fewer than `heads` for GQA).
    pub kv_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Target BPE vocabulary (special tokens come on top).
    pub vocab_size: usize,
    /// Rows of the embedding and output projection (config.json's vocab_size) when more than
    /// the tokenizer's: the extra ids are padding no text maps to and that never win a step, as
    /// in real checkpoints (Qwen2.5 pads 151,665 tokens to 151,936 rows). The bundled corpus
    /// trains well under a thousand tokens, so this is how a benchmark gets a realistic
    /// output projection.
    pub vocab_rows: Option<usize>,
    /// Output projection tied to the embedding.
    pub tied: bool,
    /// Float dtype.
    pub dtype: TinyDtype,
    /// `(bits, group_size)` to write an mlx-community quantized checkpoint.
    pub quantize: Option<(u32, usize)>,
    /// Seed for every random choice.
    pub seed: u64,
    /// Context window written to config.json.
    pub max_position_embeddings: usize,
    /// Split the weights into this many shards (with model.safetensors.index.json) when > 1.
    pub shards: usize,
}

impl TinySpec {
    /// The small default used by tests: 2 layers, width 64, GQA 4:2, fp32, untied.
    pub fn new(family: TinyFamily) -> TinySpec {
        TinySpec {
            family,
            hidden_size: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate_size: 128,
            vocab_size: 512,
            vocab_rows: None,
            tied: false,
            dtype: TinyDtype::F32,
            quantize: None,
            seed: 0,
            max_position_embeddings: 2048,
            shards: 1,
        }
    }

    /// The benchmarks' model: fp32 Llama `hidden` wide with `layers` layers, 8 query / 4 KV
    /// heads, MLP 2.75× wide, vocabulary 2048.
    pub fn bench(hidden: usize, layers: usize) -> TinySpec {
        TinySpec {
            hidden_size: hidden,
            layers,
            heads: 8,
            kv_heads: 4,
            intermediate_size: hidden * 11 / 4,
            vocab_size: 2048,
            ..TinySpec::new(TinyFamily::Llama)
        }
    }
}

const CORPUS: &str = include_str!("../tiny_corpus.txt");

fn special_tokens(family: TinyFamily) -> (&'static [&'static str], &'static str, Option<&'static str>) {
    match family {
        TinyFamily::Llama => (
            &["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
            "<|eot_id|>",
            Some("<|begin_of_text|>"),
        ),
        TinyFamily::Qwen2 | TinyFamily::Qwen3 => (&["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "<|im_end|>", None),
    }
}

/// Llama 3 style template (BOS, header ids, `.strip()`).
pub const LLAMA_TEMPLATE: &str = "{{- bos_token }}\n{%- for message in messages %}\n    {%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}\n        {{- raise_exception('Unknown role: ' + message['role']) }}\n    {%- endif %}\n    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";

/// ChatML template in Qwen's style (default system prompt, tools as JSON, tool responses).
pub const CHATML_TEMPLATE: &str = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools><|im_end|>\\n\" }}\n{%- elif messages[0]['role'] == 'system' %}\n    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message.role == 'system' and loop.first %}\n    {%- elif message.role in ['user', 'system', 'assistant'] %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content.strip() + '<|im_end|>\\n' }}\n    {%- elif message.role == 'tool' %}\n        {{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}\n    {%- else %}\n        {{- raise_exception('Unknown role: ' + message.role) }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io { path: path.to_path_buf(), source }
}

fn tok_err(path: &Path) -> impl Fn(tokenizers::Error) -> EngineError + '_ {
    move |e| EngineError::Tokenizer { path: path.to_path_buf(), message: e.to_string() }
}

/// Trains a byte-level BPE on the bundled corpus and writes tokenizer.json; returns the ids of
/// the special tokens (in `special_tokens` order) and the total vocabulary size.
fn write_tokenizer(dir: &Path, spec: &TinySpec) -> Result<(Vec<u32>, usize)> {
    let path = dir.join("tokenizer.json");
    let (specials, _, bos) = special_tokens(spec.family);
    let added: Vec<AddedToken> = specials.iter().map(|s| AddedToken::from(s.to_string(), true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(spec.vocab_size + specials.len())
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(added)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(BPE::default())
            .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false).into()))
            .with_decoder(Some(ByteLevel::default().into()))
            .build()
            .map_err(tok_err(&path))?;
    tokenizer.train(&mut trainer, CORPUS.lines()).map_err(tok_err(&path))?;
    let ids: Vec<u32> = specials
        .iter()
        .map(|s| tokenizer.token_to_id(s).expect("special tokens are in the trained vocabulary"))
        .collect();
    let post: PostProcessorWrapper = match bos {
        Some(bos) => {
            let id = tokenizer.token_to_id(bos).expect("bos is a special token");
            TemplateProcessing::builder()
                .try_single(format!("{bos}:0 $A:0"))
                .and_then(|b| b.try_pair(format!("{bos}:0 $A:0 {bos}:1 $B:1")))
                .map_err(|e| EngineError::Tokenizer { path: path.clone(), message: e.to_string() })?
                .special_tokens(vec![(bos.to_string(), id)])
                .build()
                .map_err(|e| EngineError::Tokenizer { path: path.clone(), message: e.to_string() })?
                .into()
        }
        None => ByteLevel::default().trim_offsets(false).into(),
    };
    tokenizer.with_post_processor(Some(post));
    let vocab = tokenizer.get_vocab_size(true);
    tokenizer.save(&path, true).map_err(tok_err(&path))?;
    Ok((ids, vocab))
}

/// Random weights, uniform with the given standard deviation.
struct Weights {
    rng: ChaCha8Rng,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Weights {
    fn add(&mut self, name: &str, shape: &[usize], std: f32) {
        let n: usize = shape.iter().product();
        let a = std * 3f32.sqrt();
        let data = (0..n).map(|_| self.rng.random_range(-a..a)).collect();
        self.tensors.push((name.to_string(), shape.to_vec(), data));
    }

    fn norm(&mut self, name: &str, dim: usize) {
        let data = (0..dim).map(|_| 1.0 + self.rng.random_range(-0.1f32..0.1)).collect();
        self.tensors.push((name.to_string(), vec![dim], data));
    }

    fn zero_rows(&mut self, name: &str, rows: &[u32]) {
        if let Some((_, shape, data)) = self.tensors.iter_mut().find(|t| t.0 == name) {
            let cols = shape[1];
            for &r in rows {
                data[r as usize * cols..(r as usize + 1) * cols].fill(0.0);
            }
        }
    }
}

fn float_bytes(data: &[f32], dtype: TinyDtype) -> (safetensors::Dtype, Vec<u8>) {
    match dtype {
        TinyDtype::F32 => (safetensors::Dtype::F32, data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        TinyDtype::F16 => {
            (safetensors::Dtype::F16, data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect())
        }
        TinyDtype::Bf16 => {
            (safetensors::Dtype::BF16, data.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect())
        }
    }
}

/// MLX's affine quantization of a `[rows, cols]` matrix: returns packed u32 words, scales and
/// biases (as f32, stored later in the model dtype).
fn quantize(data: &[f32], cols: usize, bits: u32, group: usize, dtype: TinyDtype) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    let levels = ((1u32 << bits) - 1) as f32;
    let per_word = 32 / bits as usize;
    let mut words = Vec::with_capacity(data.len() / per_word);
    let (mut scales, mut biases) = (Vec::new(), Vec::new());
    // Scales/biases are stored in the model dtype; quantize against the rounded values so
    // dequantization reproduces the intended grid.
    let round = |v: f32| match dtype {
        TinyDtype::F32 => v,
        TinyDtype::F16 => half::f16::from_f32(v).to_f32(),
        TinyDtype::Bf16 => half::bf16::from_f32(v).to_f32(),
    };
    for row in data.chunks(cols) {
        for g in row.chunks(group) {
            let (lo, hi) = g.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let scale = round(((hi - lo) / levels).max(1e-7));
            let bias = round(lo);
            scales.push(scale);
            biases.push(bias);
            for chunk in g.chunks(per_word) {
                let mut word = 0u32;
                for (i, &v) in chunk.iter().enumerate() {
                    let q = ((v - bias) / scale).round().clamp(0.0, levels) as u32;
                    word |= q << (i as u32 * bits);
                }
                words.push(word);
            }
        }
    }
    (words, scales, biases)
}

/// Writes a complete model folder to `dir` (created if needed).
pub fn write_tiny_model(dir: &Path, spec: &TinySpec) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (special_ids, tokens) = write_tokenizer(dir, spec)?;
    let vocab = spec.vocab_rows.map_or(tokens, |rows| rows.max(tokens));
    let (specials, eos, bos) = special_tokens(spec.family);
    let eos_id = special_ids[specials.iter().position(|s| *s == eos).expect("eos is special")];
    let head_dim = spec.hidden_size / spec.heads;
    let (d, h) = (spec.hidden_size, spec.intermediate_size);
    let mut w = Weights { rng: ChaCha8Rng::seed_from_u64(spec.seed), tensors: Vec::new() };
    w.add("model.embed_tokens.weight", &[vocab, d], 1.0);
    let lin = (d as f32).powf(-0.5);
    // Blocks outweigh the residual and attention is sharp, so the context (not just the last
    // token) decides the next one: random models then wander instead of repeating one token.
    let (gain, qk) = (3.0, 2.0);
    for i in 0..spec.layers {
        let p = format!("model.layers.{i}");
        w.add(&format!("{p}.self_attn.q_proj.weight"), &[spec.heads * head_dim, d], lin * qk);
        w.add(&format!("{p}.self_attn.k_proj.weight"), &[spec.kv_heads * head_dim, d], lin * qk);
        w.add(&format!("{p}.self_attn.v_proj.weight"), &[spec.kv_heads * head_dim, d], lin);
        w.add(&format!("{p}.self_attn.o_proj.weight"), &[d, spec.heads * head_dim], lin * gain);
        if spec.family == TinyFamily::Qwen2 {
            for (proj, n) in [("q_proj", spec.heads), ("k_proj", spec.kv_heads), ("v_proj", spec.kv_heads)] {
                w.add(&format!("{p}.self_attn.{proj}.bias"), &[n * head_dim], 0.1);
            }
        }
        if spec.family == TinyFamily::Qwen3 {
            w.norm(&format!("{p}.self_attn.q_norm.weight"), head_dim);
            w.norm(&format!("{p}.self_attn.k_norm.weight"), head_dim);
        }
        w.add(&format!("{p}.mlp.gate_proj.weight"), &[h, d], lin);
        w.add(&format!("{p}.mlp.up_proj.weight"), &[h, d], lin);
        w.add(&format!("{p}.mlp.down_proj.weight"), &[d, h], (h as f32).powf(-0.5) * gain);
        w.norm(&format!("{p}.input_layernorm.weight"), d);
        w.norm(&format!("{p}.post_attention_layernorm.weight"), d);
    }
    w.norm("model.norm.weight", d);
    if !spec.tied {
        w.add("lm_head.weight", &[vocab, d], lin * 4.0);
    }
    // Special tokens never win a greedy step on random weights (or generation would stop early),
    // nor do padding ids (no text to stream).
    let silent: Vec<u32> = special_ids.iter().copied().chain(tokens as u32..vocab as u32).collect();
    w.zero_rows("model.embed_tokens.weight", &silent);
    w.zero_rows("lm_head.weight", &silent);

    let tensors = w.tensors.into_iter().map(|(name, shape, data)| {
        let quantizable = shape.len() == 2 && name.ends_with(".weight");
        (name, shape, data, quantizable)
    });
    write_weights(dir, spec, tensors.collect())?;

    let mut config = json!({
        "architectures": [match spec.family { TinyFamily::Llama => "LlamaForCausalLM", TinyFamily::Qwen2 => "Qwen2ForCausalLM", TinyFamily::Qwen3 => "Qwen3ForCausalLM" }],
        "model_type": match spec.family { TinyFamily::Llama => "llama", TinyFamily::Qwen2 => "qwen2", TinyFamily::Qwen3 => "qwen3" },
        "hidden_size": d,
        "num_hidden_layers": spec.layers,
        "intermediate_size": h,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "max_position_embeddings": spec.max_position_embeddings,
        "tie_word_embeddings": spec.tied,
        "eos_token_id": eos_id,
        "torch_dtype": match spec.dtype { TinyDtype::F32 => "float32", TinyDtype::F16 => "float16", TinyDtype::Bf16 => "bfloat16" },
    });
    let obj = config.as_object_mut().expect("object");
    match spec.family {
        TinyFamily::Llama => {
            obj.insert("rope_theta".into(), json!(500000.0));
            obj.insert("rope_scaling".into(), json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 256}));
            obj.insert("attention_bias".into(), json!(false));
            if let Some(bos) = bos {
                obj.insert(
                    "bos_token_id".into(),
                    json!(special_ids[specials.iter().position(|s| *s == bos).expect("bos")]),
                );
            }
        }
        TinyFamily::Qwen2 | TinyFamily::Qwen3 => {
            obj.insert("rope_theta".into(), json!(1000000.0));
        }
    }
    if let Some((bits, group)) = spec.quantize {
        obj.insert("quantization".into(), json!({"group_size": group, "bits": bits}));
    }
    write_json(&dir.join("config.json"), &config)?;

    write_tokenizer_config(dir, spec, &special_ids)
}

/// tokenizer_config.json (special tokens, chat template) and generation_config.json.
fn write_tokenizer_config(dir: &Path, spec: &TinySpec, special_ids: &[u32]) -> Result<()> {
    let (specials, eos, bos) = special_tokens(spec.family);
    let eos_id = special_ids[specials.iter().position(|s| *s == eos).expect("eos is special")];
    let mut added = serde_json::Map::new();
    for (s, id) in specials.iter().zip(special_ids) {
        added.insert(id.to_string(), json!({"content": s, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}));
    }
    let mut tc = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "eos_token": eos,
        "pad_token": specials[1],
        "model_max_length": spec.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
        "chat_template": match spec.family { TinyFamily::Llama => LLAMA_TEMPLATE, _ => CHATML_TEMPLATE },
    });
    if let Some(bos) = bos {
        tc.as_object_mut().expect("object").insert("bos_token".into(), json!(bos));
    }
    write_json(&dir.join("tokenizer_config.json"), &tc)?;
    write_json(&dir.join("generation_config.json"), &json!({"eos_token_id": [eos_id], "do_sample": false}))?;
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    std::fs::write(path, text + "\n").map_err(io_err(path))
}

/// Writes `tensors` (name, shape, values, and whether the model's quantization packs it) as
/// safetensors shards; a quantizable `X.weight` becomes `X.weight`, `X.scales`, `X.biases`.
fn write_weights(dir: &Path, spec: &TinySpec, tensors: Vec<(String, Vec<usize>, Vec<f32>, bool)>) -> Result<()> {
    let mut out: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape, data, quantizable) in tensors {
        let cols = *shape.last().expect("a tensor has a shape");
        match spec.quantize {
            Some((bits, group)) if quantizable && cols % group == 0 => {
                let prefix = name.trim_end_matches(".weight");
                let (words, scales, biases) = quantize(&data, cols, bits, group, spec.dtype);
                let lead = &shape[..shape.len() - 1];
                let packed: Vec<usize> = lead.iter().copied().chain([cols * bits as usize / 32]).collect();
                out.push((
                    name.clone(),
                    safetensors::Dtype::U32,
                    packed,
                    words.iter().flat_map(|w| w.to_le_bytes()).collect(),
                ));
                let gshape: Vec<usize> = lead.iter().copied().chain([cols / group]).collect();
                let (dt, bytes) = float_bytes(&scales, spec.dtype);
                out.push((format!("{prefix}.scales"), dt, gshape.clone(), bytes));
                let (dt, bytes) = float_bytes(&biases, spec.dtype);
                out.push((format!("{prefix}.biases"), dt, gshape, bytes));
            }
            _ => {
                let (dt, bytes) = float_bytes(&data, spec.dtype);
                out.push((name, dt, shape, bytes));
            }
        }
    }
    let shards = spec.shards.max(1);
    let per_shard = out.len().div_ceil(shards);
    let mut weight_map = serde_json::Map::new();
    for (i, chunk) in out.chunks(per_shard).enumerate() {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{shards:05}.safetensors", i + 1)
        };
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = chunk
            .iter()
            .map(|(name, dt, shape, bytes)| {
                (name.clone(), safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes).expect("sizes match"))
            })
            .collect();
        for (name, _) in &views {
            weight_map.insert(name.clone(), json!(file));
        }
        let path = dir.join(&file);
        let metadata = std::collections::HashMap::from([("format".to_string(), "mlx".to_string())]);
        safetensors::serialize_to_file(views, Some(metadata), &path)
            .map_err(|e| EngineError::CorruptWeights { path: path.clone(), message: e.to_string() })?;
    }
    if shards > 1 {
        write_json(&dir.join("model.safetensors.index.json"), &json!({"metadata": {}, "weight_map": weight_map}))?;
    }
    Ok(())
}
