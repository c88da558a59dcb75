//! Rotary position embeddings. On the GPU, MLX's fused `fast::rope` kernel; on the CPU, where
//! MLX has no fused kernel and `fast::rope` expands to ~30 operations per call (positions,
//! frequencies, cosines, sines, then the rotation), the cosines and sines come from a table
//! computed once per model by that same `fast::rope`, and each forward pass slices the rows it
//! needs once for all its layers: the rotation is then 9 operations per call, with the same
//! numbers (the table holds exactly the values the expansion computes, and the rotation is the
//! same arithmetic in the same order).

use std::cell::RefCell;

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{ops, Array, Dtype};

use super::arch::Positions;
use crate::config::RopeScaling;
use crate::error::Result;

/// What a family's attention rotates: `dims` of each head (partial rotation when fewer than
/// the head's width), from `base`, with a scaling variant.
#[derive(Debug, Clone)]
pub(crate) struct RopeSpec {
    /// Rotated dimensions per head.
    pub(crate) dims: i32,
    /// Frequency base (`rope_theta`, or a local base).
    pub(crate) base: f32,
    /// Interleaved (true) or half-split (false) layout.
    pub(crate) traditional: bool,
    /// Scaling variant.
    pub(crate) scaling: RopeScaling,
}

/// Precomputed RoPE parameters.
pub(super) struct Rope {
    dims: i32,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    /// Llama 3 scaled frequencies (then `base` is None).
    freqs: Option<Array>,
    /// On the CPU (non-traditional layout): the cosine/sine table, grown on demand.
    table: Option<RefCell<Option<Table>>>,
    /// Phi's long-rope (su) scaling multiplies the rotated dimensions by this first.
    pre_scale: Option<f32>,
}

/// Cosines and sines of positions `0..capacity`, `[capacity, dims / 2]` each, in the model's dtype.
struct Table {
    cos: Array,
    sin: Array,
    capacity: i32,
}

/// The rotation of one forward pass's positions, shared by all its layers.
pub(super) enum RopeAt<'a> {
    /// MLX's `fast::rope` from this position (one fused kernel on the GPU).
    Fused { rope: &'a Rope, offset: i32 },
    /// `fast::rope` for a batch of single tokens, row `i` at position `offsets[i]`.
    FusedRows { rope: &'a Rope, offsets: Vec<i32> },
    /// The table's rows for the pass's positions, `[len, dims / 2]`, and their broadcasts to
    /// the query and key shapes (made once per pass: each binary operation between different
    /// shapes adds a broadcast operation).
    Table { dims: i32, cos: Array, sin: Array, shaped: RefCell<Vec<Shaped>>, pre_scale: Option<f32> },
}

/// `cos` and `sin` broadcast to one shape.
pub(super) struct Shaped {
    shape: Vec<i32>,
    cos: Array,
    sin: Array,
}

/// Smallest table: positions of a few short requests without regrowing.
const MIN_TABLE: i32 = 1024;

impl Rope {
    pub(super) fn new(spec: &RopeSpec) -> Result<Rope> {
        let dims = spec.dims;
        let plain = |scale: f32, freqs: Option<Array>, pre_scale: Option<f32>| Rope {
            dims,
            traditional: spec.traditional,
            base: if freqs.is_some() { None } else { Some(spec.base) },
            scale,
            freqs,
            table: None,
            pre_scale,
        };
        Ok(match &spec.scaling {
            RopeScaling::Default { scale } => plain(*scale, None, None),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let (factor, low_freq_factor, high_freq_factor) = (*factor, *low_freq_factor, *high_freq_factor);
                // Same arithmetic as mlx-lm's Llama3RoPE, in MLX ops so rounding matches.
                let old = *original_max_position_embeddings;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                let freqs = base_freqs(spec.base, dims)?;
                let wavelens = freqs.multiply(Array::from_f32(2.0 * std::f32::consts::PI))?;
                let freqs = ops::select(
                    wavelens.gt(Array::from_f32(low_wavelen))?,
                    freqs.multiply(Array::from_f32(factor))?,
                    &freqs,
                )?;
                let is_medium = wavelens
                    .gt(Array::from_f32(high_wavelen))?
                    .logical_and(wavelens.lt(Array::from_f32(low_wavelen))?)?;
                let smooth = Array::from_f32(old)
                    .divide(&wavelens)?
                    .subtract(Array::from_f32(low_freq_factor))?
                    .divide(Array::from_f32(high_freq_factor - low_freq_factor))?;
                let smooth_freqs = freqs
                    .divide(Array::from_f32(1.0).subtract(&smooth)?.divide(Array::from_f32(factor))?.add(&smooth)?)?;
                let freqs = ops::select(is_medium, smooth_freqs, &freqs)?;
                freqs.eval()?;
                plain(1.0, Some(freqs), None)
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
            } => {
                let (freqs, input_scale) = yarn(
                    spec.base as f64,
                    dims,
                    *factor as f64,
                    *original_max_position_embeddings as f64,
                    (*beta_fast as f64, *beta_slow as f64),
                    (*mscale as f64, *mscale_all_dim as f64),
                )?;
                plain(1.0, Some(freqs), (input_scale != 1.0).then_some(input_scale as f32))
            }
            RopeScaling::Su { long_factor, max_position_embeddings, original_max_position_embeddings } => {
                // mlx-lm's SuScaledRoPE: the long factors always, and the inputs scaled by
                // sqrt(1 + ln(factor) / ln(original)) when the context was extended.
                let freqs = Array::from_slice(long_factor, &[long_factor.len() as i32])
                    .multiply(base_freqs(spec.base, dims)?)?;
                freqs.eval()?;
                let factor = *max_position_embeddings as f64 / *original_max_position_embeddings as f64;
                let scale = if factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + factor.ln() / (*original_max_position_embeddings as f64).ln()).sqrt()
                };
                plain(1.0, Some(freqs), (scale != 1.0).then_some(scale as f32))
            }
        })
    }

    /// mlx-lm's `ProportionalRoPE` (Gemma 4's global layers): the whole head of `dims` goes
    /// through `fast::rope` with explicit frequencies `factor · base^(2i / dims)` for the first
    /// `rotated / 2` pairs and infinite ones (no rotation) for the rest, so the unrotated
    /// features are the upper part of each half, not a tail of the head.
    pub(super) fn proportional(dims: i32, rotated: i32, base: f32, factor: f32, traditional: bool) -> Result<Rope> {
        let exps = ops::arange::<_, f32>(0.0, rotated as f32, 2.0)?.divide(Array::from_f32(dims as f32))?;
        let rotating = ops::power(Array::from_f32(base), &exps)?.multiply(Array::from_f32(factor))?;
        let still = ops::full::<f32>(&[(dims - rotated) / 2], Array::from_f32(f32::INFINITY))?;
        let freqs = ops::concatenate(&[rotating, still], 0)?;
        freqs.eval()?;
        Ok(Rope { dims, traditional, base: None, scale: 1.0, freqs: Some(freqs), table: None, pre_scale: None })
    }

    /// Uses a table when the engine runs on the CPU (the traditional interleaved layout, rare,
    /// keeps `fast::rope`).
    pub(super) fn with_table_on_cpu(mut self) -> Result<Rope> {
        if super::on_cpu()? && !self.traditional {
            self.table = Some(RefCell::new(None));
        }
        Ok(self)
    }

    /// The rotation of a pass's positions for `dtype` activations.
    pub(super) fn for_pass(&self, positions: &Positions<'_>, dtype: Dtype) -> Result<RopeAt<'_>> {
        match positions {
            Positions::From { offset, len } => self.at(*offset, *len, dtype),
            Positions::Rows(rows) => self.at_rows(rows, dtype),
        }
    }

    /// The rotation for positions `offset..offset + len` of `dtype` activations.
    pub(super) fn at(&self, offset: i32, len: i32, dtype: Dtype) -> Result<RopeAt<'_>> {
        let Some(cell) = &self.table else { return Ok(RopeAt::Fused { rope: self, offset }) };
        let t = self.table_reaching(cell, offset + len, dtype)?;
        Ok(RopeAt::Table {
            dims: self.dims,
            cos: t.cos.try_index((offset..offset + len, ..))?,
            sin: t.sin.try_index((offset..offset + len, ..))?,
            shaped: RefCell::new(Vec::new()),
            pre_scale: self.pre_scale,
        })
    }

    /// The rotation of a batch of single tokens, row `i` at position `positions[i]`.
    pub(super) fn at_rows(&self, positions: &[i32], dtype: Dtype) -> Result<RopeAt<'_>> {
        let Some(cell) = &self.table else { return Ok(RopeAt::FusedRows { rope: self, offsets: positions.to_vec() }) };
        let end = positions.iter().max().map_or(0, |p| p + 1);
        let t = self.table_reaching(cell, end, dtype)?;
        let (rows, half) = (positions.len() as i32, self.dims / 2);
        let at = Array::from_slice(positions, &[rows]);
        // [rows, 1, 1, dims / 2]: each row's angles, for its [heads, 1, dims / 2] block.
        Ok(RopeAt::Table {
            dims: self.dims,
            cos: t.cos.take_axis(&at, 0)?.reshape(&[rows, 1, 1, half])?,
            sin: t.sin.take_axis(&at, 0)?.reshape(&[rows, 1, 1, half])?,
            shaped: RefCell::new(Vec::new()),
            pre_scale: self.pre_scale,
        })
    }

    /// The table, grown (or rebuilt for another dtype) to cover positions below `end`.
    fn table_reaching<'c>(
        &self,
        cell: &'c RefCell<Option<Table>>,
        end: i32,
        dtype: Dtype,
    ) -> Result<std::cell::RefMut<'c, Table>> {
        let mut table = cell.borrow_mut();
        if table.as_ref().is_none_or(|t| t.capacity < end || t.cos.dtype() != dtype) {
            *table = Some(self.table_for((end.max(MIN_TABLE) as u32).next_power_of_two() as i32, dtype)?);
        }
        Ok(std::cell::RefMut::map(table, |t| t.as_mut().expect("just built")))
    }

    /// The table, computed by `fast::rope` itself: rotating the unit vector (1, …, 1, 0, …, 0)
    /// gives (cos, sin) exactly (1·c − 0·s = c and 1·s + 0·c = s in every dtype).
    fn table_for(&self, capacity: i32, dtype: Dtype) -> Result<Table> {
        let half = self.dims / 2;
        let ones = ops::ones_dtype(&[1, 1, capacity, half], dtype)?;
        let zeros = ops::zeros_dtype(&[1, 1, capacity, half], dtype)?;
        let unit = ops::concatenate(&[ones, zeros], -1)?;
        let rotated = mlx_rs::fast::rope(&unit, self.dims, false, self.base, self.scale, 0, self.freqs.as_ref())?
            .reshape(&[capacity, self.dims])?;
        let cos = rotated.try_index((.., ..half))?;
        let sin = rotated.try_index((.., half..))?;
        mlx_rs::transforms::eval([&cos, &sin])?;
        Ok(Table { cos, sin, capacity })
    }
}

impl RopeAt<'_> {
    /// Rotates `[batch, heads, len, head_dim]` queries or keys.
    pub(super) fn apply(&self, x: &Array) -> Result<Array> {
        let pre_scale = match self {
            RopeAt::Fused { rope, .. } | RopeAt::FusedRows { rope, .. } => rope.pre_scale,
            RopeAt::Table { pre_scale, .. } => *pre_scale,
        };
        match pre_scale {
            Some(s) => self.rotate(&scale_rotated(x, self.dims(), s)?),
            None => self.rotate(x),
        }
    }

    fn dims(&self) -> i32 {
        match self {
            RopeAt::Fused { rope, .. } | RopeAt::FusedRows { rope, .. } => rope.dims,
            RopeAt::Table { dims, .. } => *dims,
        }
    }

    fn rotate(&self, x: &Array) -> Result<Array> {
        match self {
            RopeAt::Fused { rope, offset } => Ok(mlx_rs::fast::rope(
                x,
                rope.dims,
                rope.traditional,
                rope.base,
                rope.scale,
                *offset,
                rope.freqs.as_ref(),
            )?),
            RopeAt::FusedRows { rope, offsets } => {
                let rows = offsets
                    .iter()
                    .enumerate()
                    .map(|(i, &offset)| {
                        let row = x.try_index((i as i32..i as i32 + 1, .., .., ..))?;
                        RopeAt::Fused { rope, offset }.rotate(&row)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ops::concatenate(&rows, 0)?)
            }
            RopeAt::Table { dims, cos, sin, shaped, .. } => {
                // The same arithmetic, in the same order, as MLX's own expansion of `fast::rope`.
                let (dims, half) = (*dims, dims / 2);
                let x1 = x.try_index((.., .., .., ..half))?;
                let x2 = x.try_index((.., .., .., half..dims))?;
                let mut shaped = shaped.borrow_mut();
                let i = match shaped.iter().position(|s| s.shape == x1.shape()) {
                    Some(i) => i,
                    None => {
                        let shape = x1.shape().to_vec();
                        let (cos, sin) = (ops::broadcast_to(cos, &shape)?, ops::broadcast_to(sin, &shape)?);
                        shaped.push(Shaped { shape, cos, sin });
                        shaped.len() - 1
                    }
                };
                let (cos, sin) = (&shaped[i].cos, &shaped[i].sin);
                let out1 = x1.multiply(cos)?.subtract(x2.multiply(sin)?)?;
                let out2 = x1.multiply(sin)?.add(x2.multiply(cos)?)?;
                let mut parts = vec![out1, out2];
                if dims < x.shape()[3] {
                    parts.push(x.try_index((.., .., .., dims..))?);
                }
                Ok(ops::concatenate(&parts, -1)?)
            }
        }
    }
}

/// `base^(2i / dims)` for `i < dims / 2`, as mlx-lm computes RoPE frequencies.
fn base_freqs(base: f32, dims: i32) -> Result<Array> {
    let exps = ops::arange::<_, f32>(0.0, dims as f32, 2.0)?.divide(Array::from_f32(dims as f32))?;
    Ok(ops::power(Array::from_f32(base), &exps)?)
}

/// mlx-lm's YarnRoPE: frequencies blended between interpolated and extrapolated by a linear
/// ramp over the correction range, and the input scale `mscale(factor, mscale) /
/// mscale(factor, mscale_all_dim)` (the range and scales in f64 as Python computes them, the
/// frequencies in f32 MLX ops).
fn yarn(
    base: f64,
    dims: i32,
    factor: f64,
    original: f64,
    (beta_fast, beta_slow): (f64, f64),
    (mscale, mscale_all_dim): (f64, f64),
) -> Result<(Array, f64)> {
    let correction_dim =
        |rotations: f64| (dims as f64 * (original / (rotations * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * base.ln());
    let low = correction_dim(beta_fast).floor().max(0.0);
    let high = correction_dim(beta_slow).ceil().min((dims - 1) as f64);
    let get_mscale = |m: f64| if factor <= 1.0 { 1.0 } else { 0.1 * m * factor.ln() + 1.0 };
    let input_scale = get_mscale(mscale) / get_mscale(mscale_all_dim);
    let f = |v: f64| Array::from_f32(v as f32);
    let freq_extra = base_freqs(base as f32, dims)?;
    let freq_inter = f(factor).multiply(&freq_extra)?;
    let high = if low == high { high + 0.001 } else { high };
    let ramp = ops::arange::<_, f32>(0.0, (dims / 2) as f32, 1.0)?.subtract(f(low))?.divide(f(high - low))?;
    let ramp = ops::clip(&ramp, (f(0.0), f(1.0)))?;
    let mask = f(1.0).subtract(&ramp)?;
    let freqs = freq_inter
        .multiply(&freq_extra)?
        .divide(freq_inter.multiply(&mask)?.add(freq_extra.multiply(f(1.0).subtract(&mask)?)?)?)?;
    freqs.eval()?;
    Ok((freqs, input_scale))
}

/// `x` with its first `dims` features multiplied by `s` (in x's dtype, as mlx-lm's
/// `x.at[..., :dims].multiply(s)`).
fn scale_rotated(x: &Array, dims: i32, s: f32) -> Result<Array> {
    let s = Array::from_f32(s).as_dtype(x.dtype())?;
    if dims >= x.shape()[3] {
        return Ok(x.multiply(&s)?);
    }
    let head = x.try_index((.., .., .., ..dims))?.multiply(&s)?;
    Ok(ops::concatenate(&[head, x.try_index((.., .., .., dims..))?], -1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(dims: i32, base: Option<f32>, scale: f32, freqs: Option<Array>) -> Rope {
        Rope { dims, traditional: false, base, scale, freqs, table: Some(RefCell::new(None)), pre_scale: None }
    }

    /// The table's rotation gives bit for bit what `fast::rope` gives on the CPU, for default and
    /// explicit frequencies, scaled positions, partial rotation, two dtypes, and offsets that make
    /// the table grow.
    #[test]
    fn table_rotation_equals_fast_rope_exactly() {
        mlx_rs::Device::set_default(&mlx_rs::Device::cpu());
        let freqs = ops::arange::<_, f32>(1.0, 17.0, 1.0).unwrap().multiply(Array::from_f32(3.5)).unwrap();
        let cases = [
            (rope(32, Some(10000.0), 1.0, None), 32),
            (rope(32, Some(500000.0), 0.25, None), 48),
            (rope(32, None, 1.0, Some(freqs)), 32),
        ];
        for (r, head_dim) in &cases {
            for dtype in [Dtype::Float32, Dtype::Bfloat16] {
                for (offset, len) in [(0, 1), (0, 37), (5, 1), (1000, 40), (3000, 7)] {
                    let x = mlx_rs::random::normal::<f32>(&[2, 3, len, *head_dim], None, None, None)
                        .unwrap()
                        .as_dtype(dtype)
                        .unwrap();
                    let fused = RopeAt::Fused { rope: r, offset }.apply(&x).unwrap();
                    let table = r.at(offset, len, dtype).unwrap().apply(&x).unwrap();
                    assert_eq!(fused.shape(), table.shape());
                    let same = ops::array_eq(&fused, &table, false).unwrap().item_exact::<bool>();
                    assert!(same, "dims {} offset {offset} len {len} {dtype:?}: the rotations differ", r.dims);
                }
                // Single tokens at different positions, as batched decoding rotates them.
                let positions = [0, 7, 1500, 3];
                let x = mlx_rs::random::normal::<f32>(&[4, 3, 1, *head_dim], None, None, None)
                    .unwrap()
                    .as_dtype(dtype)
                    .unwrap();
                let rows = r.at_rows(&positions, dtype).unwrap().apply(&x).unwrap();
                for (i, &offset) in positions.iter().enumerate() {
                    let row = x.try_index((i as i32..i as i32 + 1, .., .., ..)).unwrap();
                    let fused = RopeAt::Fused { rope: r, offset }.apply(&row).unwrap();
                    let got = rows.try_index((i as i32..i as i32 + 1, .., .., ..)).unwrap();
                    let same = ops::array_eq(&fused, &got, false).unwrap().item_exact::<bool>();
                    assert!(same, "dims {} row at {offset} {dtype:?}: the rotations differ", r.dims);
                }
            }
        }
    }
}
