//! The few layer kinds the supported families use, each either dense or mlx-community quantized,
//! computed with the same MLX ops mlx-lm uses so results match it bit for bit.

use mlx_rs::{ops, Array};

use crate::config::Quantization;
use crate::error::Result;

/// A linear projection `y = x Wᵀ (+ b)`.
pub(crate) enum Linear {
    /// Plain weights `[out, in]`.
    Dense { weight: Array, bias: Option<Array> },
    /// Packed weights with per-group scales and biases.
    Quantized { weight: Array, scales: Array, biases: Array, bias: Option<Array>, q: Quantization },
}

impl Linear {
    pub(crate) fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Linear::Dense { weight, bias: Some(bias) } => Ok(ops::addmm(bias, x, weight.t(), None, None)?),
            Linear::Dense { weight, bias: None } => Ok(x.matmul(weight.t())?),
            Linear::Quantized { weight, scales, biases, bias, q } => {
                let y = ops::quantized_matmul(x, weight, scales, biases, true, q.group_size, q.bits)?;
                Ok(match bias {
                    Some(b) => y.add(b)?,
                    None => y,
                })
            }
        }
    }

    /// Bytes held by this layer's arrays.
    pub(crate) fn nbytes(&self) -> usize {
        match self {
            Linear::Dense { weight, bias } => weight.nbytes() + bias.as_ref().map_or(0, Array::nbytes),
            Linear::Quantized { weight, scales, biases, bias, .. } => {
                weight.nbytes() + scales.nbytes() + biases.nbytes() + bias.as_ref().map_or(0, Array::nbytes)
            }
        }
    }
}

/// Token embedding, also usable as the tied output projection.
pub(crate) enum Embedding {
    Dense { weight: Array },
    Quantized { weight: Array, scales: Array, biases: Array, q: Quantization },
}

impl Embedding {
    pub(crate) fn forward(&self, ids: &Array) -> Result<Array> {
        match self {
            Embedding::Dense { weight } => Ok(weight.take_axis(ids, 0)?),
            Embedding::Quantized { weight, scales, biases, q } => Ok(ops::dequantize(
                weight.take_axis(ids, 0)?,
                scales.take_axis(ids, 0)?,
                &biases.take_axis(ids, 0)?,
                q.group_size,
                q.bits,
            )?),
        }
    }

    /// The tied lm_head: `x Eᵀ`.
    pub(crate) fn as_linear(&self, x: &Array) -> Result<Array> {
        match self {
            Embedding::Dense { weight } => Ok(x.matmul(weight.t())?),
            Embedding::Quantized { weight, scales, biases, q } => {
                Ok(ops::quantized_matmul(x, weight, scales, biases, true, q.group_size, q.bits)?)
            }
        }
    }

    pub(crate) fn nbytes(&self) -> usize {
        match self {
            Embedding::Dense { weight } => weight.nbytes(),
            Embedding::Quantized { weight, scales, biases, .. } => {
                weight.nbytes() + scales.nbytes() + biases.nbytes()
            }
        }
    }
}

/// RMSNorm with a learned scale.
pub(crate) struct RmsNorm {
    pub(crate) weight: Array,
    pub(crate) eps: f32,
}

impl RmsNorm {
    pub(crate) fn forward(&self, x: &Array) -> Result<Array> {
        Ok(mlx_rs::fast::rms_norm(x, Some(&self.weight), self.eps)?)
    }
}
