//! Phi-3, Phi-3.5 and Phi-4 (`phi3`): the Llama graph with q/k/v and gate/up fused in the
//! checkpoint, partial rotary dimensions and long-rope (su) scaling (mlx-lm's
//! `models/phi3.py`). The head width is always hidden / heads there, whatever config says.

use super::arch::Architecture;
use super::args::{Args, Defaults};
use super::attention::AttentionLayout;
use super::decoder::{uniform, Layout};
use super::registry::Family;
use super::weights::WeightSet;
use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

pub(crate) const FAMILY: Family = Family {
    name: "phi3",
    model_types: &["phi3"],
    defaults: Defaults {
        rope_theta: 10_000.0,
        tie_word_embeddings: false,
        head_dim_required: false,
        rms_norm_eps: None,
    },
    build,
    tiny: r#"{"partial_rotary_factor": 0.5}"#,
    nested_defaults: "{}",
};

fn build(
    config: &ModelConfig,
    args: &Args,
    w: WeightSet,
    progress: &mut dyn FnMut(f32),
) -> Result<Box<dyn Architecture>> {
    let args = args.head_dim_from_hidden(config)?;
    let layout = Layout {
        attention: AttentionLayout { fused_qkv: true, ..AttentionLayout::PLAIN },
        fused_gate_up: true,
        ..Layout::plain()?
    };
    let rope_dims = args.rotary_dims(config, args.f32_or("partial_rotary_factor", 1.0))?;
    if let Ok(RopeScaling::Su { long_factor, .. }) = &args.rope_scaling {
        if long_factor.len() as i32 != rope_dims / 2 {
            return Err(config.invalid(format!(
                "rope_scaling.long_factor has {} entries; {rope_dims} rotated dimensions need {}",
                long_factor.len(),
                rope_dims / 2
            )));
        }
    }
    uniform(config, w, &args, layout, rope_dims, |_| None, progress)
}
