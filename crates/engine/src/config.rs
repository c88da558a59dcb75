//! `config.json` of a Hugging Face / mlx-community model folder, read the way mlx-lm reads it:
//! what the engine needs of every model here; each family reads the rest of the same object
//! (its module in `model/`, chosen by `model_type` through the registry).

use std::path::Path;

use serde::Deserialize;

use crate::error::{EngineError, Result};

/// mlx-community quantization parameters (`"quantization": {"group_size": 64, "bits": 4}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Quantization {
    /// Elements sharing one scale/bias.
    pub group_size: i32,
    /// Bits per weight.
    pub bits: i32,
}

impl Quantization {
    /// Bits and group size libmlx's affine quantization supports.
    pub fn check(&self) -> std::result::Result<(), String> {
        if ![2, 3, 4, 5, 6, 8].contains(&self.bits) || ![32, 64, 128].contains(&self.group_size) {
            return Err(format!("unsupported quantization bits={} group_size={}", self.bits, self.group_size));
        }
        Ok(())
    }
}

/// RoPE frequencies: plain, linear-scaled, or Llama 3's smoothed scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Standard RoPE with `scale` (1.0, or 1/factor for "linear").
    Default {
        /// Position scale.
        scale: f32,
    },
    /// Phi's long-rope ("su" / "longrope") scaling, as mlx-lm's SuScaledRoPE applies it.
    Su {
        /// `long_factor`, one per rotated frequency.
        long_factor: Vec<f32>,
        /// `max_position_embeddings`.
        max_position_embeddings: usize,
        /// `original_max_position_embeddings`.
        original_max_position_embeddings: usize,
    },
    /// YaRN (gpt-oss, DeepSeek), as mlx-lm's YarnRoPE computes it.
    Yarn {
        /// `factor`.
        factor: f32,
        /// `original_max_position_embeddings` (default 4096).
        original_max_position_embeddings: f32,
        /// `beta_fast` (default 32).
        beta_fast: f32,
        /// `beta_slow` (default 1).
        beta_slow: f32,
        /// `mscale` (default 1).
        mscale: f32,
        /// `mscale_all_dim` (default 0).
        mscale_all_dim: f32,
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
    vocab_size: Option<i32>,
    max_position_embeddings: Option<usize>,
    eos_token_id: Option<serde_json::Value>,
    bos_token_id: Option<serde_json::Value>,
    quantization: Option<Quantization>,
}

/// What the engine needs of every model, validated; the family's own fields stay in `args`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The family's registry name (`llama`, `gemma2`, …).
    pub family: &'static str,
    /// `model_type` as written.
    pub model_type: String,
    /// Vocabulary rows of the embedding.
    pub vocab_size: i32,
    /// Context window, when the config says.
    pub max_position_embeddings: Option<usize>,
    /// End-of-sequence ids from config.json.
    pub eos_token_ids: Vec<u32>,
    /// Beginning-of-sequence id from config.json.
    pub bos_token_id: Option<u32>,
    /// Present for mlx-community quantized checkpoints.
    pub quantization: Option<Quantization>,
    /// The whole config object (the text model's, where the model nests it in `text_config`),
    /// which the family parses for its own fields.
    pub args: serde_json::Value,
    /// The file it came from (for errors).
    pub path: std::path::PathBuf,
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

    /// Parses config.json text; `path` is only used in errors. A `model_type` no family here
    /// implements is [`EngineError::UnsupportedArchitecture`].
    pub fn parse(text: &str, path: &Path) -> Result<ModelConfig> {
        let invalid = |message: String| EngineError::InvalidConfig { path: path.to_path_buf(), message };
        let mut json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| invalid("no `model_type`".into()))?;
        let resolved = resolve(&json);
        let Some(family) = resolved.family else {
            return Err(EngineError::UnsupportedArchitecture {
                model_type: resolved.model_type.unwrap_or(model_type),
                path: path.to_path_buf(),
            });
        };
        if json.get("text_config").is_some_and(|t| t.is_object()) {
            json = merged_text_config(json);
            if resolved.nested {
                // An unknown wrapper (Gemma 3's `gemma3`) around a known text model: the fields
                // the wrapper's class fills in mlx-lm.
                if let Some(text) = json.as_object_mut() {
                    for (key, value) in crate::model::nested_defaults(family) {
                        text.entry(key).or_insert(value);
                    }
                }
            } else {
                // A known multimodal family (Qwen3.5) serves its nested text model.
                json["model_type"] = serde_json::Value::String(model_type.clone());
            }
        }
        let raw: RawConfig = serde_json::from_value(json.clone()).map_err(|e| invalid(e.to_string()))?;
        let vocab_size = match raw.vocab_size {
            Some(v) if v > 0 => v,
            Some(v) => return Err(invalid(format!("`vocab_size` must be positive, got {v}"))),
            None => return Err(invalid("missing `vocab_size`".into())),
        };
        let mode = json.get("quantization").and_then(|q| q.get("mode")).and_then(|m| m.as_str()).unwrap_or("affine");
        if mode != "affine" {
            return Err(invalid(format!(
                "quantization mode `{mode}` is not supported by this engine (it runs affine 2-8 bit weights)"
            )));
        }
        if let Some(q) = raw.quantization {
            q.check().map_err(invalid)?;
        }
        let config = ModelConfig {
            family,
            model_type: raw.model_type.unwrap_or(model_type),
            vocab_size,
            max_position_embeddings: raw.max_position_embeddings,
            eos_token_ids: token_ids(&raw.eos_token_id),
            bos_token_id: token_ids(&raw.bos_token_id).first().copied(),
            quantization: raw.quantization,
            args: json,
            path: path.to_path_buf(),
        };
        // The family's own fields are checked now, not when the weights are read.
        crate::model::check_args(&config)?;
        Ok(config)
    }

    /// The error for an inconsistent field of this config.
    pub(crate) fn invalid(&self, message: impl Into<String>) -> EngineError {
        EngineError::InvalidConfig { path: self.path.clone(), message: message.into() }
    }
}

/// What a model folder is, read from its config.json without loading anything: its
/// `model_type` (the nested text model's where only that one is known) and the family of this
/// engine that runs it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// config.json's `model_type` (None: no readable config).
    pub model_type: Option<String>,
    /// The family that builds it (None: not supported).
    pub family: Option<&'static str>,
    /// Its context window (`max_position_embeddings`, top-level or in `text_config`), if stated.
    pub context_length: Option<usize>,
}

/// Reads the architecture of the model folder `dir` (cheap: config.json only).
pub fn architecture(dir: &Path) -> Architecture {
    let json: Option<serde_json::Value> =
        std::fs::read_to_string(dir.join("config.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    match json {
        Some(json) => {
            let Resolved { model_type, family, .. } = resolve(&json);
            let context = |v: &serde_json::Value| v.get("max_position_embeddings").and_then(|n| n.as_u64());
            let context_length =
                context(&json).or_else(|| json.get("text_config").and_then(context)).map(|n| n as usize);
            Architecture { model_type, family, context_length }
        }
        None => Architecture { model_type: None, family: None, context_length: None },
    }
}

/// Which family serves a config.json object.
struct Resolved {
    /// The `model_type` it is known by (the nested one when the top-level one is unknown).
    model_type: Option<String>,
    family: Option<&'static str>,
    /// The family is the nested `text_config`'s (an unknown multimodal wrapper).
    nested: bool,
}

/// The family of the top-level `model_type`, else of the nested `text_config.model_type`.
fn resolve(json: &serde_json::Value) -> Resolved {
    let name = |v: &serde_json::Value| v.get("model_type").and_then(|t| t.as_str()).map(str::to_string);
    let top = name(json);
    if let Some(family) = top.as_deref().and_then(crate::model::family_of) {
        return Resolved { model_type: top, family: Some(family), nested: false };
    }
    let nested = json.get("text_config").and_then(name);
    let family = nested.as_deref().and_then(crate::model::family_of);
    Resolved { model_type: nested.or(top), family, nested: family.is_some() }
}

/// The nested text model's config with the top level's quantization and token ids.
fn merged_text_config(mut json: serde_json::Value) -> serde_json::Value {
    let Some(mut text) = json.get_mut("text_config").map(serde_json::Value::take) else { return json };
    if let (Some(text), Some(top)) = (text.as_object_mut(), json.as_object()) {
        for key in ["quantization", "eos_token_id", "bos_token_id", "vocab_size"] {
            if let (false, Some(v)) = (text.contains_key(key), top.get(key)) {
                text.insert(key.to_string(), v.clone());
            }
        }
    }
    text
}

/// `rope_scaling` as mlx-lm reads it (`type` or `rope_type`).
pub(crate) fn parse_rope_scaling(
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
        // mlx-lm runs text-only multimodal RoPE (`mrope`) as plain RoPE.
        "default" | "mrope" => Ok(RopeScaling::Default { scale: 1.0 }),
        "linear" => Ok(RopeScaling::Default { scale: 1.0 / num("factor", None)? }),
        "longrope" | "su" => {
            let long_factor = map
                .get("long_factor")
                .and_then(|v| v.as_array())
                .ok_or("rope_scaling needs `long_factor`")?
                .iter()
                .map(|v| v.as_f64().map(|f| f as f32).ok_or("`long_factor` must hold numbers"))
                .collect::<std::result::Result<Vec<f32>, _>>()?;
            Ok(RopeScaling::Su { long_factor, max_position_embeddings: 0, original_max_position_embeddings: 0 })
        }
        "yarn" | "deepseek_yarn" => Ok(RopeScaling::Yarn {
            factor: num("factor", None)?,
            original_max_position_embeddings: num("original_max_position_embeddings", Some(4096.0))?,
            beta_fast: num("beta_fast", Some(32.0))?,
            beta_slow: num("beta_slow", Some(1.0))?,
            mscale: num("mscale", Some(1.0))?,
            mscale_all_dim: num("mscale_all_dim", Some(0.0))?,
        }),
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
        // A nested text model is named when neither type is known.
        let err = parse(r#"{"model_type":"llava","text_config":{"model_type":"vicuna"}}"#).unwrap_err();
        assert!(matches!(err, EngineError::UnsupportedArchitecture { ref model_type, .. } if model_type == "vicuna"));
    }

    #[test]
    fn llama3_rope_scaling_and_eos_list() {
        let cfg = parse(
            r#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"intermediate_size":128,
            "num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,"vocab_size":100,
            "rope_scaling":{"rope_type":"llama3","factor":8.0},"eos_token_id":[1,2]}"#,
        )
        .unwrap();
        assert_eq!((cfg.family, cfg.eos_token_ids), ("llama", vec![1, 2]));
        let bad = parse(
            r#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"intermediate_size":128,
            "num_attention_heads":4,"rms_norm_eps":1e-5,"vocab_size":100,"rope_scaling":{"rope_type":"yarnish"}}"#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("unsupported rope_scaling type `yarnish`"), "{bad}");
    }

    /// A Gemma 3 multimodal config whose text_config leaves out what mlx-lm's wrapper fills in.
    #[test]
    fn nested_gemma3_text_config_gets_the_wrapper_s_defaults() {
        let cfg = parse(
            r#"{"model_type":"gemma3","text_config":{"model_type":"gemma3_text","hidden_size":64,
            "intermediate_size":128,"num_hidden_layers":2,"sliding_window":8},"eos_token_id":[1,106]}"#,
        )
        .unwrap();
        assert_eq!(cfg.family, "gemma3_text");
        assert_eq!(cfg.vocab_size, 262208);
        assert_eq!(cfg.args["num_attention_heads"], 8);
        assert_eq!(cfg.eos_token_ids, vec![1, 106]);
    }

    #[test]
    fn unusable_family_fields_are_typed_errors_when_the_config_is_read() {
        let base = r#""hidden_size":64,"num_hidden_layers":2,"intermediate_size":128,"num_attention_heads":4,
            "num_key_value_heads":2,"head_dim":16,"rms_norm_eps":1e-6,"vocab_size":100"#;
        for (model_type, extra, needle) in [
            ("gemma3_text", r#""sliding_window":0"#, "sliding_window"),
            ("gpt_oss", r#""num_local_experts":4,"num_experts_per_tok":5"#, "experts per token"),
            ("qwen3_moe", r#""num_experts":4,"num_experts_per_tok":2,"moe_intermediate_size":0"#, "expert width"),
            ("phi3", r#""partial_rotary_factor":0.01"#, "partial_rotary_factor"),
            ("llama", r#""num_hidden_layers":100000"#, "num_hidden_layers"),
        ] {
            let text = format!(r#"{{"model_type":"{model_type}",{base},{extra}}}"#);
            let err = parse(&text).unwrap_err();
            assert!(
                matches!(err, EngineError::InvalidConfig { .. }) && err.to_string().contains(needle),
                "{model_type}: {err}"
            );
        }
    }

    #[test]
    fn mxfp4_checkpoints_are_refused_naming_the_mode() {
        let err = parse(
            r#"{"model_type":"gpt_oss","hidden_size":64,"num_hidden_layers":2,"intermediate_size":64,
            "num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"vocab_size":100,
            "quantization":{"group_size":32,"bits":4,"mode":"mxfp4"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("quantization mode `mxfp4` is not supported"), "{err}");
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
