//! The MLP's SiLU, `x · sigmoid(x)`.
//!
//! On the CPU the Linux build of libmlx evaluates `sigmoid` (and `exp`) one element at a time,
//! with a libm call for each fused multiply-add of its polynomial: ~26 ns per element against
//! ~0.4 ns for an addition, and the largest single item in a `perf` profile of a small model's
//! prompts (docs/PERFORMANCE.md). `power` with a scalar base of 2 is a third of that, so on the
//! CPU sigmoid is computed as `1 / (1 + 2^(−x · log₂e))` — the same reduction MLX's own `exp`
//! starts with (it multiplies by log₂e first); the two agree to ~2 ulp (3e-7 relative, tested).
//! Only float32 activations take it: 16-bit ones would lose the product's precision, and their
//! `sigmoid` already computes in float32. The GPU keeps MLX's fused kernel.

use mlx_rs::{ops, Array, Dtype};

use crate::error::Result;

/// How the MLP computes its gate's sigmoid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Silu {
    /// MLX's `sigmoid` (the GPU; 16-bit activations).
    Sigmoid,
    /// `1 / (1 + 2^(−x · log₂e))` for float32 activations on the CPU.
    Power2,
}

impl Silu {
    /// The form for the engine's default device.
    pub(super) fn for_default_device() -> Result<Silu> {
        Ok(if super::on_cpu()? { Silu::Power2 } else { Silu::Sigmoid })
    }

    /// `x · sigmoid(x)`.
    pub(super) fn apply(self, x: &Array) -> Result<Array> {
        Ok(x.multiply(self.sigmoid(x)?)?)
    }

    fn sigmoid(self, x: &Array) -> Result<Array> {
        if self == Silu::Sigmoid || x.dtype() != Dtype::Float32 {
            return Ok(ops::sigmoid(x)?);
        }
        let t = x.multiply(Array::from_f32(-std::f32::consts::LOG2_E))?;
        Ok(ops::power(Array::from_f32(2.0), &t)?.add(Array::from_f32(1.0))?.reciprocal()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_form_agrees_with_mlx_sigmoid_to_a_few_ulp_over_the_whole_range() {
        let values: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.025).chain([-104.0, -88.5, 88.5, 104.0]).collect();
        let x = Array::from_slice(&values, &[values.len() as i32]);
        let ours = Silu::Power2.sigmoid(&x).unwrap();
        let mlx = ops::sigmoid(&x).unwrap();
        for ((v, a), b) in values.iter().zip(ours.as_slice::<f32>()).zip(mlx.as_slice::<f32>()) {
            let tolerance = 4.0 * f32::EPSILON * b.abs() + 1e-30;
            assert!((a - b).abs() <= tolerance, "sigmoid({v}): {a} against MLX's {b}");
        }
        let silu = Silu::Power2.apply(&x).unwrap();
        let reference = x.multiply(&mlx).unwrap();
        let (s, r) = (silu.as_slice::<f32>(), reference.as_slice::<f32>());
        assert!(s.iter().zip(r).all(|(a, b)| (a - b).abs() <= 4.0 * f32::EPSILON * b.abs() + 1e-30));
        // 16-bit activations keep MLX's sigmoid.
        let half = x.as_dtype(Dtype::Bfloat16).unwrap();
        let ours = Silu::Power2.sigmoid(&half).unwrap();
        assert_eq!(ours.dtype(), Dtype::Bfloat16);
        assert!(ours.eq(ops::sigmoid(&half).unwrap()).unwrap().all(None).unwrap().item_exact::<bool>());
    }
}
