//! Which module builds which `model_type`: one line per family. Adding a family is one file in
//! `model/`, one line here and one conformance test (docs/ARCHITECTURE.md).

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::weights::WeightSet;
use super::{
    deepseek_v2, deepseek_v3, gemma2, gemma3, gemma4, gpt_oss, llama, mixtral, phi3, qwen2, qwen3, qwen3_5, qwen3_moe,
    qwen3_next,
};
use crate::config::ModelConfig;
use crate::error::Result;

/// A family's builder: its forward pass from the config's shared fields and the checkpoint,
/// consuming every tensor (an unexpected one is an error); reports progress from 0 to 1.
pub(crate) type Build = fn(&ModelConfig, &Args, WeightSet, &mut dyn FnMut(f32)) -> Result<Box<dyn Architecture>>;

/// One family: the `model_type`s it serves, its config defaults, and its builder.
pub(crate) struct Family {
    /// Registry name (the first model_type).
    pub(crate) name: &'static str,
    /// `model_type` values this module builds.
    pub(crate) model_types: &'static [&'static str],
    /// Defaults for the shared config fields config.json may leave out.
    pub(crate) defaults: Defaults,
    /// Builds the forward pass.
    pub(crate) build: Build,
    /// This family's own config.json fields for a tiny random model (`make-tiny-model`), on top
    /// of the shared widths.
    pub(crate) tiny: &'static str,
    /// Defaults for the fields a multimodal checkpoint's nested `text_config` may leave out
    /// (mlx-lm's wrapper class fills them; Gemma 3's `gemma3`), as JSON.
    pub(crate) nested_defaults: &'static str,
}

impl Family {
    /// The shared config fields of `config`, validated with this family's defaults (run when
    /// the config is read, before any weight).
    pub(crate) fn args(&self, config: &ModelConfig) -> Result<Args> {
        Args::parse(config, self.defaults)
    }
}

/// Every family, in the order `supported_model_types` lists them.
const FAMILIES: &[&Family] = &[
    &llama::FAMILY,
    &qwen2::FAMILY,
    &qwen3::FAMILY,
    &phi3::FAMILY,
    &gemma2::FAMILY,
    &gemma3::FAMILY,
    &gemma4::FAMILY,
    &mixtral::FAMILY,
    &qwen3_moe::FAMILY,
    &gpt_oss::FAMILY,
    &qwen3_next::FAMILY,
    &qwen3_5::FAMILY,
    &deepseek_v2::FAMILY,
    &deepseek_v3::FAMILY,
];

/// The family that builds `model_type`.
pub(crate) fn family(model_type: &str) -> Option<&'static Family> {
    FAMILIES.iter().copied().find(|f| f.model_types.contains(&model_type))
}

/// Every family's registry name (the `model_type` make-tiny-model writes).
pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.name).collect()
}

/// Every `model_type` this engine loads.
pub fn supported_model_types() -> Vec<&'static str> {
    FAMILIES.iter().flat_map(|f| f.model_types.iter().copied()).collect()
}
