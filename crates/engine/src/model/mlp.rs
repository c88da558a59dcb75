//! The gated dense feed-forward block: `down(act(gate(x)) · up(x))`, with the gate and up
//! projections run as one product (a checkpoint's own fused `gate_up_proj`, as Phi-3 ships it,
//! or fused at load).

use mlx_rs::transforms::compile::compile;
use mlx_rs::Array;

use super::activation::Silu;
use super::layers::Linear;
use super::weights::WeightSet;
use crate::config::Quantization;
use crate::error::Result;

/// The gate's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// SiLU (Llama, Qwen, Phi); its CPU form is in activation.rs.
    Silu(Silu),
    /// GELU with the tanh approximation (Gemma), compiled as mlx's `nn.gelu_approx` is.
    GeluTanh,
}

impl Activation {
    /// SiLU in the form for the engine's default device.
    pub(crate) fn silu() -> Result<Activation> {
        Ok(Activation::Silu(Silu::for_default_device()?))
    }

    pub(super) fn apply(self, x: &Array) -> Result<Array> {
        match self {
            Activation::Silu(s) => s.apply(x),
            Activation::GeluTanh => {
                // 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))), with the constants in x's
                // dtype (Python scalars are weakly typed) and compiled like mlx's own.
                let f = |x: &Array| -> std::result::Result<Array, mlx_rs::error::Exception> {
                    let c = |v: f64| Array::from_f32(v as f32).as_dtype(x.dtype());
                    let inner = x.add(c(0.044715)?.multiply(x.power(c(3.0)?)?)?)?;
                    let t = mlx_rs::ops::tanh(c((2.0 / std::f64::consts::PI).sqrt())?.multiply(&inner)?)?;
                    c(0.5)?.multiply(x)?.multiply(c(1.0)?.add(&t)?)
                };
                let mut compiled = compile(f, true);
                Ok(compiled(x)?)
            }
        }
    }
}

pub(crate) struct GatedMlp {
    /// gate and up fused; split at `width`.
    gate_up_proj: Linear,
    down_proj: Linear,
    width: i32,
    act: Activation,
}

impl GatedMlp {
    /// Reads `{prefix}.gate_proj`/`up_proj`/`down_proj` (or `gate_up_proj` when `fused`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        w: &mut WeightSet,
        prefix: &str,
        d: i32,
        width: i32,
        bias: bool,
        fused: bool,
        act: Activation,
        q: Option<Quantization>,
    ) -> Result<GatedMlp> {
        let gate_up_proj = if fused {
            w.linear(&format!("{prefix}.gate_up_proj"), d, 2 * width, bias, q)?
        } else {
            Linear::fuse(vec![
                w.linear(&format!("{prefix}.gate_proj"), d, width, bias, q)?,
                w.linear(&format!("{prefix}.up_proj"), d, width, bias, q)?,
            ])?
        };
        let down_proj = w.linear(&format!("{prefix}.down_proj"), width, d, bias, q)?;
        Ok(GatedMlp { gate_up_proj, down_proj, width, act })
    }

    pub(crate) fn forward(&self, x: &Array) -> Result<Array> {
        let gate_up = self.gate_up_proj.forward(x)?.split_at_indices(&[self.width], -1)?;
        let act = self.act.apply(&gate_up[0])?.multiply(&gate_up[1])?;
        self.down_proj.forward(&act)
    }

    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        self.gate_up_proj.arrays(out);
        self.down_proj.arrays(out);
    }

    pub(crate) fn nbytes(&self) -> usize {
        self.gate_up_proj.nbytes() + self.down_proj.nbytes()
    }
}
