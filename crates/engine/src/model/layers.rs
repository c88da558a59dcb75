//! The few layer kinds the supported families use, each either dense or mlx-community quantized,
//! computed with the same MLX ops mlx-lm uses so results match it bit for bit.

use mlx_rs::{ops, Array};

use crate::config::Quantization;
use crate::error::Result;

/// A linear projection `y = x Wᵀ (+ b)`.
pub(crate) enum Linear {
    /// Plain weights `[out, in]`, and `t`, their transposed view `[in, out]` (made once at load,
    /// not once per forward pass; it shares the weights' memory).
    Dense { weight: Array, t: Array, bias: Option<Array> },
    /// Packed weights with per-group scales and biases.
    Quantized { weight: Array, scales: Array, biases: Array, bias: Option<Array>, q: Quantization },
    /// Projections that could not be fused (mixed layouts): run one by one, outputs concatenated.
    Many(Vec<Linear>),
}

impl Linear {
    pub(crate) fn dense(weight: Array, bias: Option<Array>) -> Linear {
        let t = weight.t();
        Linear::Dense { weight, t, bias }
    }

    pub(crate) fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Linear::Dense { t, bias: Some(bias), .. } => Ok(ops::addmm(bias, x, t, None, None)?),
            Linear::Dense { t, bias: None, .. } => Ok(x.matmul(t)?),
            Linear::Quantized { weight, scales, biases, bias, q } => {
                let y = ops::quantized_matmul(x, weight, scales, biases, true, q.group_size, q.bits)?;
                Ok(match bias {
                    Some(b) => y.add(b)?,
                    None => y,
                })
            }
            Linear::Many(parts) => {
                let outs = parts.iter().map(|p| p.forward(x)).collect::<Result<Vec<_>>>()?;
                Ok(ops::concatenate(&outs, -1)?)
            }
        }
    }

    /// One projection computing several (same input, outputs concatenated), so a decode step runs
    /// one matrix product instead of three (q/k/v) or two (gate/up). Rows are independent in both
    /// the dense and the quantized layout, so the outputs are the same numbers.
    pub(crate) fn fuse(parts: Vec<Linear>) -> Result<Linear> {
        let with_bias = parts
            .iter()
            .filter(|p| matches!(p, Linear::Dense { bias: Some(_), .. } | Linear::Quantized { bias: Some(_), .. }))
            .count();
        if with_bias != 0 && with_bias != parts.len() {
            return Ok(Linear::Many(parts));
        }
        let cat = |arrays: Vec<&Array>| -> Result<Array> { Ok(ops::concatenate(&arrays, 0)?) };
        let biases: Option<Vec<&Array>> = parts
            .iter()
            .map(|p| match p {
                Linear::Dense { bias, .. } | Linear::Quantized { bias, .. } => bias.as_ref(),
                Linear::Many(_) => None,
            })
            .collect();
        let bias = biases.map(cat).transpose()?;
        match &parts[0] {
            Linear::Dense { .. } => {
                let weights = parts
                    .iter()
                    .map(|p| match p {
                        Linear::Dense { weight, .. } => Ok(weight),
                        Linear::Quantized { .. } | Linear::Many(_) => Err(()),
                    })
                    .collect::<std::result::Result<Vec<_>, ()>>();
                match weights {
                    Ok(w) => Ok(Linear::dense(cat(w)?, bias)),
                    Err(()) => Ok(Linear::Many(parts)),
                }
            }
            Linear::Quantized { q, .. } => {
                let q = *q;
                let mut packed = (Vec::new(), Vec::new(), Vec::new());
                for p in &parts {
                    match p {
                        Linear::Quantized { weight, scales, biases, q: pq, .. } if *pq == q => {
                            packed.0.push(weight);
                            packed.1.push(scales);
                            packed.2.push(biases);
                        }
                        _ => return Ok(Linear::Many(parts)),
                    }
                }
                Ok(Linear::Quantized {
                    weight: cat(packed.0)?,
                    scales: cat(packed.1)?,
                    biases: cat(packed.2)?,
                    bias,
                    q,
                })
            }
            Linear::Many(_) => Ok(Linear::Many(parts)),
        }
    }

    /// This layer's arrays (to evaluate them at load).
    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        match self {
            Linear::Dense { weight, t, bias } => out.extend([weight, t].into_iter().chain(bias)),
            Linear::Quantized { weight, scales, biases, bias, .. } => {
                out.extend([weight, scales, biases].into_iter().chain(bias))
            }
            Linear::Many(parts) => parts.iter().for_each(|p| p.arrays(out)),
        }
    }

    /// Bytes held by this layer's arrays.
    pub(crate) fn nbytes(&self) -> usize {
        match self {
            Linear::Dense { weight, bias, .. } => weight.nbytes() + bias.as_ref().map_or(0, Array::nbytes),
            Linear::Quantized { weight, scales, biases, bias, .. } => {
                weight.nbytes() + scales.nbytes() + biases.nbytes() + bias.as_ref().map_or(0, Array::nbytes)
            }
            Linear::Many(parts) => parts.iter().map(Linear::nbytes).sum(),
        }
    }
}

/// Token embedding, also usable as the tied output projection.
pub(crate) enum Embedding {
    /// `[vocab, dim]`, and its transposed view for the tied output projection.
    Dense {
        weight: Array,
        t: Array,
    },
    Quantized {
        weight: Array,
        scales: Array,
        biases: Array,
        q: Quantization,
    },
}

impl Embedding {
    pub(crate) fn forward(&self, ids: &Array) -> Result<Array> {
        match self {
            Embedding::Dense { weight, .. } => Ok(weight.take_axis(ids, 0)?),
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
            Embedding::Dense { t, .. } => Ok(x.matmul(t)?),
            Embedding::Quantized { weight, scales, biases, q } => {
                Ok(ops::quantized_matmul(x, weight, scales, biases, true, q.group_size, q.bits)?)
            }
        }
    }

    /// This table's arrays (to evaluate them at load).
    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        match self {
            Embedding::Dense { weight, t } => out.extend([weight, t]),
            Embedding::Quantized { weight, scales, biases, .. } => out.extend([weight, scales, biases]),
        }
    }

    pub(crate) fn nbytes(&self) -> usize {
        match self {
            Embedding::Dense { weight, .. } => weight.nbytes(),
            Embedding::Quantized { weight, scales, biases, .. } => weight.nbytes() + scales.nbytes() + biases.nbytes(),
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
