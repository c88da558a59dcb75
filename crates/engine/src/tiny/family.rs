//! Tiny random-weight models of any family (`make-tiny-model --family F`): the family's own
//! builder, run against a recording weight set, lists every tensor it reads (model/mod.rs
//! `tensor_layout`), so the folder written here is exactly what the loader — and mlx-lm, whose
//! layout the loader follows — expects, without a second description of each family.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{
    io_err, special_tokens, write_json, write_tokenizer, write_tokenizer_config, write_weights, TinyFamily, TinySpec,
};
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};

/// Writes a tiny `family` model (a registry name, e.g. `gemma3_text`) with `spec`'s widths,
/// dtype, quantization, seed and shards, a ChatML tokenizer and template.
pub fn write_family_model(dir: &Path, family: &str, spec: &TinySpec) -> Result<()> {
    write_family_model_with(dir, family, spec, &json!({}))
}

/// [`write_family_model`] with config.json fields of `overrides` replacing the family's tiny
/// ones (benchmarks: expert counts and widths, linear-attention heads).
pub fn write_family_model_with(dir: &Path, family: &str, spec: &TinySpec, overrides: &serde_json::Value) -> Result<()> {
    let fields = crate::model::tiny_fields(family).ok_or_else(|| EngineError::UnsupportedArchitecture {
        model_type: family.to_string(),
        path: dir.join("config.json"),
    })?;
    let spec = TinySpec { family: TinyFamily::Qwen2, ..spec.clone() };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (special_ids, vocab) = write_tokenizer(dir, &spec)?;
    let (specials, eos, _) = special_tokens(spec.family);
    let eos_id = special_ids[specials.iter().position(|s| *s == eos).expect("eos is special")];
    // The tokenizer's specials (ChatML) are the model's end-of-sequence ids.
    let mut config = json!({
        "model_type": family,
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.layers,
        "intermediate_size": spec.intermediate_size,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.hidden_size / spec.heads,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab,
        "max_position_embeddings": spec.max_position_embeddings,
        "tie_word_embeddings": spec.tied,
        "eos_token_id": eos_id,
    });
    let own: serde_json::Value = serde_json::from_str(fields).expect("a family's tiny fields are JSON");
    let obj = config.as_object_mut().expect("object");
    obj.extend(own.as_object().expect("an object").clone());
    // A field whose tiny value is "vocab_size" gets the vocabulary's size (Gemma 4's per-layer
    // embedding has its own vocabulary, as large as the model's).
    for v in obj.values_mut() {
        if v.as_str() == Some("vocab_size") {
            *v = json!(vocab);
        }
    }
    if let Some(o) = overrides.as_object() {
        obj.extend(o.clone());
    }
    if let Some((bits, group)) = spec.quantize {
        obj.insert("quantization".into(), json!({"group_size": group, "bits": bits}));
    }
    let path = dir.join("config.json");
    let parsed = ModelConfig::parse(&config.to_string(), &path)?;
    let layout = crate::model::tensor_layout(&parsed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut tensors = Vec::with_capacity(layout.len());
    for t in layout {
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let n: usize = shape.iter().product();
        let cols = *shape.last().unwrap_or(&1) as f32;
        let name = if t.quantizable { format!("{}.weight", t.name) } else { t.name };
        let uniform = |rng: &mut ChaCha8Rng, std: f32| -> Vec<f32> {
            let a = std * 3f32.sqrt();
            (0..n).map(|_| rng.random_range(-a..a)).collect()
        };
        let mut data = if shape.len() >= 2 {
            let std = if name.contains("conv1d") { 0.5 } else { cols.powf(-0.5) };
            uniform(&mut rng, std)
        } else if name.contains("norm")
            || name.ends_with("dt_bias")
            || name.ends_with("scale")
            || name.ends_with("scalar")
        {
            uniform(&mut rng, 0.06).into_iter().map(|v| v + 1.0).collect()
        } else {
            uniform(&mut rng, 0.06)
        };
        // Special tokens never win a greedy step on random weights.
        if name.ends_with("embed_tokens.weight") || name.ends_with("lm_head.weight") {
            for &r in &special_ids {
                data[r as usize * cols as usize..(r as usize + 1) * cols as usize].fill(0.0);
            }
        }
        tensors.push((name, shape, data, t.quantizable));
    }
    write_weights(dir, &spec, tensors)?;
    write_json(&path, &config)?;
    write_tokenizer_config(dir, &spec, &special_ids)
}
