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

/// Layers a config may declare (far above any released model; a bound before allocating).
const MAX_LAYERS: i32 = 1024;

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
    /// `rope_scaling` as parsed; an error only matters to the families that apply it (read it
    /// through [`Args::rope_scaling`]).
    pub(crate) rope_scaling: std::result::Result<RopeScaling, String>,
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
        let mut rope_scaling = parse_rope_scaling(raw.rope_scaling.as_ref());
        if let Ok(RopeScaling::Su { max_position_embeddings, original_max_position_embeddings, .. }) = &mut rope_scaling
        {
            let get =
                |key: &str, default: usize| raw.rest.get(key).and_then(|v| v.as_u64()).map_or(default, |v| v as usize);
            *max_position_embeddings = config.max_position_embeddings.unwrap_or(131_072);
            *original_max_position_embeddings = get("original_max_position_embeddings", 4096);
        }
        let num_layers = need(raw.num_hidden_layers, "num_hidden_layers")?;
        if num_layers > MAX_LAYERS {
            return Err(
                config.invalid(format!("`num_hidden_layers` is {num_layers}; at most {MAX_LAYERS} are supported"))
            );
        }
        Ok(Args {
            hidden_size,
            num_layers,
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

    /// Whether layer `i` has experts in Qwen's MoE layouts: every `decoder_sparse_step`-th layer
    /// not listed in `mlp_only_layers`.
    pub(crate) fn sparse_layer(&self, i: i32) -> bool {
        let step = self.i32_or("decoder_sparse_step", 1).max(1);
        let dense = self.rest.get("mlp_only_layers").and_then(|v| v.as_array());
        let listed = dense.is_some_and(|d| d.iter().any(|v| v.as_i64() == Some(i64::from(i))));
        !listed && (i + 1) % step == 0
    }

    /// The RoPE scaling to apply (a typed error for a variant this engine does not implement).
    pub(crate) fn rope_scaling(&self, config: &ModelConfig) -> Result<RopeScaling> {
        self.rope_scaling.clone().map_err(|m| config.invalid(m))
    }

    /// The rotated dimensions per head for a `partial_rotary_factor`-style fraction: even, at
    /// least 2 and at most the head width, or a typed error.
    pub(crate) fn rotary_dims(&self, config: &ModelConfig, factor: f32) -> Result<i32> {
        let dims = (self.head_dim as f32 * factor) as i32;
        if dims < 2 || dims % 2 != 0 || dims > self.head_dim {
            return Err(config.invalid(format!(
                "partial_rotary_factor {factor} rotates {dims} of {} head dimensions (need an even number ≥ 2)",
                self.head_dim
            )));
        }
        Ok(dims)
    }

    /// Which layers slide, from `layer_types` (`"sliding_attention"`), else `default(i)`; a
    /// typed error when the list is shorter than the model.
    pub(crate) fn sliding_layers(&self, config: &ModelConfig, default: impl Fn(i32) -> bool) -> Result<Vec<bool>> {
        let Some(types) = self.rest.get("layer_types").and_then(|v| v.as_array()) else {
            return Ok((0..self.num_layers).map(default).collect());
        };
        if types.len() < self.num_layers as usize {
            return Err(config.invalid(format!(
                "`layer_types` has {} entries for {} layers",
                types.len(),
                self.num_layers
            )));
        }
        Ok(types.iter().map(|t| t.as_str() == Some("sliding_attention")).collect())
    }

    /// A positive `sliding_window` (or its default), else a typed error.
    pub(crate) fn sliding_window(&self, config: &ModelConfig, default: i32) -> Result<i32> {
        match self.i32_or("sliding_window", default) {
            w if w >= 1 => Ok(w),
            w => Err(config.invalid(format!("`sliding_window` must be positive, got {w}"))),
        }
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
