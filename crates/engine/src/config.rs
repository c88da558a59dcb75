//! `config.json` of a Hugging Face / mlx-community model folder, read the way mlx-lm reads it.

use std::path::Path;

use serde::Deserialize;

use crate::error::{EngineError, Result};

/// The model families this engine implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 1/2/3 (incl. Llama 3 rope scaling); Mistral uses the same graph.
    Llama,
    /// Qwen2 / Qwen2.5: bias on q/k/v projections.
    Qwen2,
    /// Qwen3: q/k RMS norms, explicit head_dim, no bias.
    Qwen3,
}

impl Family {
    fn from_model_type(model_type: &str) -> Option<Family> {
        match model_type {
            "llama" | "mistral" => Some(Family::Llama),
            "qwen2" => Some(Family::Qwen2),
            "qwen3" => Some(Family::Qwen3),
            _ => None,
        }
    }
}

/// mlx-community quantization parameters (`"quantization": {"group_size": 64, "bits": 4}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Quantization {
    /// Elements sharing one scale/bias.
    pub group_size: i32,
    /// Bits per weight.
    pub bits: i32,
}

/// RoPE frequencies: plain, linear-scaled, or Llama 3's smoothed scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Standard RoPE with `scale` (1.0, or 1/factor for "linear").
    Default {
        /// Position scale.
        scale: f32,
    },
    /// Llama 3.x scaling.
    Llama3 {
        /// `factor`.
        factor: f32,
        /// `low_freq_factor` (default 1).
        low_freq_factor: f32,
        /// `high_freq_factor` (default 4).
        high_freq_factor: f32,
        /// `original_max_position_embeddings` (default 8192).
        original_max_position_embeddings: f32,
    },
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    hidden_size: Option<i32>,
    num_hidden_layers: Option<i32>,
    intermediate_size: Option<i32>,
    num_attention_heads: Option<i32>,
    num_key_value_heads: Option<i32>,
    head_dim: Option<i32>,
    rms_norm_eps: Option<f32>,
    vocab_size: Option<i32>,
    rope_theta: Option<f32>,
    #[serde(default)]
    rope_traditional: bool,
    rope_scaling: Option<serde_json::Map<String, serde_json::Value>>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    #[serde(default)]
    mlp_bias: bool,
    max_position_embeddings: Option<usize>,
    eos_token_id: Option<serde_json::Value>,
    bos_token_id: Option<serde_json::Value>,
    quantization: Option<Quantization>,
}

/// Everything the forward pass needs, validated.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Which graph to build.
    pub family: Family,
    /// `model_type` as written.
    pub model_type: String,
    /// Residual stream width.
    pub hidden_size: i32,
    /// Transformer blocks.
    pub num_layers: i32,
    /// MLP width.
    pub intermediate_size: i32,
    /// Query heads.
    pub num_heads: i32,
    /// Key/value heads (GQA when fewer than `num_heads`).
    pub num_kv_heads: i32,
    /// Per-head width.
    pub head_dim: i32,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// Vocabulary rows of the embedding.
    pub vocab_size: i32,
    /// RoPE base.
    pub rope_theta: f32,
    /// Interleaved (true) or half-split (false) RoPE.
    pub rope_traditional: bool,
    /// RoPE scaling variant.
    pub rope_scaling: RopeScaling,
    /// The output projection reuses the embedding.
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v (and o for Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on o_proj.
    pub o_bias: bool,
    /// Bias on the MLP projections.
    pub mlp_bias: bool,
    /// Context window, when the config says.
    pub max_position_embeddings: Option<usize>,
    /// End-of-sequence ids from config.json.
    pub eos_token_ids: Vec<u32>,
    /// Beginning-of-sequence id from config.json.
    pub bos_token_id: Option<u32>,
    /// Present for mlx-community quantized checkpoints.
    pub quantization: Option<Quantization>,
}

fn token_ids(value: &Option<serde_json::Value>) -> Vec<u32> {
    match value {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_u64()).map(|v| v as u32).collect(),
        _ => Vec::new(),
    }
}

impl ModelConfig {
    /// Reads and validates `config.json` in `dir`.
    pub fn load(dir: &Path) -> Result<ModelConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| EngineError::Io { path: path.clone(), source })?;
        Self::parse(&text, &path)
    }

    /// Parses config.json text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ModelConfig> {
        let invalid = |message: String| EngineError::InvalidConfig { path: path.to_path_buf(), message };
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let model_type = raw.model_type.clone().ok_or_else(|| invalid("no `model_type`".into()))?;
        let family = Family::from_model_type(&model_type).ok_or_else(|| EngineError::UnsupportedArchitecture {
            model_type: model_type.clone(),
            path: path.to_path_buf(),
        })?;
        let need = |v: Option<i32>, name: &str| -> Result<i32> {
            match v {
                Some(v) if v > 0 => Ok(v),
                Some(v) => Err(invalid(format!("`{name}` must be positive, got {v}"))),
                None => Err(invalid(format!("missing `{name}`"))),
            }
        };
        let hidden_size = need(raw.hidden_size, "hidden_size")?;
        let num_heads = need(raw.num_attention_heads, "num_attention_heads")?;
        let num_kv_heads = match raw.num_key_value_heads {
            Some(_) => need(raw.num_key_value_heads, "num_key_value_heads")?,
            None => num_heads,
        };
        if num_heads % num_kv_heads != 0 {
            return Err(invalid(format!(
                "num_attention_heads ({num_heads}) is not a multiple of num_key_value_heads ({num_kv_heads})"
            )));
        }
        let head_dim = match (family, raw.head_dim) {
            (Family::Qwen3, None) => return Err(invalid("missing `head_dim`".into())),
            (_, Some(_)) => need(raw.head_dim, "head_dim")?,
            (_, None) => {
                if hidden_size % num_heads != 0 {
                    return Err(invalid("hidden_size is not a multiple of num_attention_heads".into()));
                }
                hidden_size / num_heads
            }
        };
        let rope_theta = raw.rope_theta.unwrap_or(match family {
            Family::Llama => 10_000.0,
            Family::Qwen2 | Family::Qwen3 => 1_000_000.0,
        });
        let rope_scaling = parse_rope_scaling(raw.rope_scaling.as_ref()).map_err(invalid)?;
        if let Some(q) = raw.quantization {
            if ![2, 3, 4, 5, 6, 8].contains(&q.bits) || ![32, 64, 128].contains(&q.group_size) {
                return Err(invalid(format!("unsupported quantization bits={} group_size={}", q.bits, q.group_size)));
            }
        }
        let attention_bias = raw.attention_bias.unwrap_or(false);
        let (qkv_bias, o_bias) = match family {
            Family::Llama => (attention_bias, attention_bias),
            Family::Qwen2 => (true, false),
            Family::Qwen3 => (false, false),
        };
        Ok(ModelConfig {
            family,
            model_type,
            hidden_size,
            num_layers: need(raw.num_hidden_layers, "num_hidden_layers")?,
            intermediate_size: need(raw.intermediate_size, "intermediate_size")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.ok_or_else(|| invalid("missing `rms_norm_eps`".into()))?,
            vocab_size: need(raw.vocab_size, "vocab_size")?,
            rope_theta,
            rope_traditional: raw.rope_traditional,
            rope_scaling,
            // mlx-lm's default for all three families.
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(true),
            qkv_bias,
            o_bias,
            mlp_bias: raw.mlp_bias,
            max_position_embeddings: raw.max_position_embeddings,
            eos_token_ids: token_ids(&raw.eos_token_id),
            bos_token_id: token_ids(&raw.bos_token_id).first().copied(),
            quantization: raw.quantization,
        })
    }
}

fn parse_rope_scaling(
    map: Option<&serde_json::Map<String, serde_json::Value>>,
) -> std::result::Result<RopeScaling, String> {
    let Some(map) = map else { return Ok(RopeScaling::Default { scale: 1.0 }) };
    let kind = map.get("type").or_else(|| map.get("rope_type")).and_then(|v| v.as_str()).unwrap_or("default");
    let num = |key: &str, default: Option<f32>| -> std::result::Result<f32, String> {
        match map.get(key).and_then(|v| v.as_f64()) {
            Some(v) => Ok(v as f32),
            None => default.ok_or_else(|| format!("rope_scaling needs `{key}`")),
        }
    };
    match kind {
        "default" => Ok(RopeScaling::Default { scale: 1.0 }),
        "linear" => Ok(RopeScaling::Default { scale: 1.0 / num("factor", None)? }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: num("factor", None)?,
            low_freq_factor: num("low_freq_factor", Some(1.0))?,
            high_freq_factor: num("high_freq_factor", Some(4.0))?,
            original_max_position_embeddings: num("original_max_position_embeddings", Some(8192.0))?,
        }),
        other => Err(format!("unsupported rope_scaling type `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelConfig> {
        ModelConfig::parse(text, Path::new("config.json"))
    }

    #[test]
    fn unknown_model_type_is_typed() {
        let err = parse(r#"{"model_type":"gpt2"}"#).unwrap_err();
        assert!(matches!(err, EngineError::UnsupportedArchitecture { ref model_type, .. } if model_type == "gpt2"));
    }

    #[test]
    fn llama3_rope_scaling_and_eos_list() {
        let cfg = parse(
            r#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"intermediate_size":128,
            "num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,"vocab_size":100,
            "rope_scaling":{"rope_type":"llama3","factor":8.0},"eos_token_id":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(cfg.head_dim, 16);
        assert_eq!(cfg.eos_token_ids, vec![1, 2]);
        assert!(matches!(cfg.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 8.0));
    }

    #[test]
    fn gqa_must_divide() {
        let err = parse(
            r#"{"model_type":"qwen2","hidden_size":64,"num_hidden_layers":2,"intermediate_size":128,
            "num_attention_heads":4,"num_key_value_heads":3,"rms_norm_eps":1e-5,"vocab_size":100}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("multiple"), "{err}");
    }
}
