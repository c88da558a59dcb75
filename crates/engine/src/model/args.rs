//! The config fields every decoder family here shares (widths, heads, norms, RoPE), read from
//! config.json's object with each family's own defaults, and validated once.

use serde::Deserialize;

use crate::config::{parse_rope_scaling, ModelConfig, RopeScaling};
use crate::error::Result;

/// config.json's shared fields as written (each family fills its defaults).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawArgs {
    hidden_size: Option<i32>,
    num_hidden_layers: Option<i32>,
    intermediate_size: Option<i32>,
    num_attention_heads: Option<i32>,
    num_key_value_heads: Option<i32>,
    head_dim: Option<i32>,
    rms_norm_eps: Option<f32>,
    rope_theta: Option<f32>,
    #[serde(default)]
    rope_traditional: bool,
    rope_scaling: Option<serde_json::Map<String, serde_json::Value>>,
    tie_word_embeddings: Option<bool>,
    /// Only what the families read; the rest of the object is theirs to parse.
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// A family's defaults for fields config.json may leave out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    /// `rope_theta` when absent.
    pub(crate) rope_theta: f32,
    /// `tie_word_embeddings` when absent.
    pub(crate) tie_word_embeddings: bool,
    /// `head_dim` must be given (else hidden / heads).
    pub(crate) head_dim_required: bool,
    /// `rms_norm_eps` when absent (None: required).
    pub(crate) rms_norm_eps: Option<f32>,
}

/// The shared fields, validated.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) hidden_size: i32,
    pub(crate) num_layers: i32,
    pub(crate) intermediate_size: i32,
    pub(crate) num_heads: i32,
    pub(crate) num_kv_heads: i32,
    pub(crate) head_dim: i32,
    pub(crate) rms_norm_eps: f32,
    pub(crate) rope_theta: f32,
    pub(crate) rope_traditional: bool,
    pub(crate) rope_scaling: RopeScaling,
    pub(crate) tie_word_embeddings: bool,
    /// The rest of the config object, for family-specific fields.
    pub(crate) rest: serde_json::Map<String, serde_json::Value>,
}

impl Args {
    /// Reads and checks the shared fields of `config` with the family's `defaults`.
    pub(crate) fn parse(config: &ModelConfig, defaults: Defaults) -> Result<Args> {
        let raw: RawArgs = serde_json::from_value(config.args.clone()).map_err(|e| config.invalid(e.to_string()))?;
        let need = |v: Option<i32>, name: &str| -> Result<i32> {
            match v {
                Some(v) if v > 0 => Ok(v),
                Some(v) => Err(config.invalid(format!("`{name}` must be positive, got {v}"))),
                None => Err(config.invalid(format!("missing `{name}`"))),
            }
        };
        let hidden_size = need(raw.hidden_size, "hidden_size")?;
        let num_heads = need(raw.num_attention_heads, "num_attention_heads")?;
        let num_kv_heads = match raw.num_key_value_heads {
            Some(_) => need(raw.num_key_value_heads, "num_key_value_heads")?,
            None => num_heads,
        };
        if num_heads % num_kv_heads != 0 {
            return Err(config.invalid(format!(
                "num_attention_heads ({num_heads}) is not a multiple of num_key_value_heads ({num_kv_heads})"
            )));
        }
        let head_dim = match raw.head_dim {
            Some(_) => need(raw.head_dim, "head_dim")?,
            None if defaults.head_dim_required => return Err(config.invalid("missing `head_dim`")),
            None => {
                if hidden_size % num_heads != 0 {
                    return Err(config.invalid("hidden_size is not a multiple of num_attention_heads"));
                }
                hidden_size / num_heads
            }
        };
        let mut rope_scaling = parse_rope_scaling(raw.rope_scaling.as_ref()).map_err(|m| config.invalid(m))?;
        if let RopeScaling::Su { max_position_embeddings, original_max_position_embeddings, .. } = &mut rope_scaling {
            let get =
                |key: &str, default: usize| raw.rest.get(key).and_then(|v| v.as_u64()).map_or(default, |v| v as usize);
            *max_position_embeddings = config.max_position_embeddings.unwrap_or(131_072);
            *original_max_position_embeddings = get("original_max_position_embeddings", 4096);
        }
        Ok(Args {
            hidden_size,
            num_layers: need(raw.num_hidden_layers, "num_hidden_layers")?,
            intermediate_size: need(raw.intermediate_size, "intermediate_size")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: raw
                .rms_norm_eps
                .or(defaults.rms_norm_eps)
                .ok_or_else(|| config.invalid("missing `rms_norm_eps`"))?,
            rope_theta: raw.rope_theta.unwrap_or(defaults.rope_theta),
            rope_traditional: raw.rope_traditional,
            rope_scaling,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(defaults.tie_word_embeddings),
            rest: raw.rest,
        })
    }

    /// These args with the head width hidden / heads, whatever config.json says (Phi-3 and
    /// Mixtral compute it so in mlx-lm).
    pub(crate) fn head_dim_from_hidden(&self, config: &ModelConfig) -> Result<Args> {
        if self.hidden_size % self.num_heads != 0 {
            return Err(config.invalid("hidden_size is not a multiple of num_attention_heads"));
        }
        Ok(Args { head_dim: self.hidden_size / self.num_heads, ..self.clone() })
    }

    /// A family-specific number, or its default.
    pub(crate) fn f32_or(&self, key: &str, default: f32) -> f32 {
        self.rest.get(key).and_then(|v| v.as_f64()).map_or(default, |v| v as f32)
    }

    /// A family-specific integer, or its default.
    pub(crate) fn i32_or(&self, key: &str, default: i32) -> i32 {
        self.rest.get(key).and_then(|v| v.as_i64()).map_or(default, |v| v as i32)
    }

    /// A family-specific flag, or its default.
    pub(crate) fn bool_or(&self, key: &str, default: bool) -> bool {
        self.rest.get(key).and_then(|v| v.as_bool()).unwrap_or(default)
    }
}
