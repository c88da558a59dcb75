//! The gated delta rule, Qwen3-Next's linear attention (mlx-lm's `Qwen3NextGatedDeltaNet` and
//! `models/gated_delta.py`, its ops path): projections to q, k, v, a gate z and the decay and
//! write-strength inputs a, b; a causal depthwise convolution over the last `kernel` inputs;
//! L2-normalised q and k; then a recurrence over positions that decays and updates a per-head
//! `[v_dim, k_dim]` state (float32) and reads it with q; a gated RMS norm; the output
//! projection. Instead of keys and values its cache carries the convolution's last inputs and
//! the state (cache.rs `Recurrent`), so its memory does not grow with the sequence.

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::transforms::compile::compile;
use mlx_rs::{ops, Array, Dtype};

use super::layers::{Linear, RmsNorm};
use super::weights::WeightSet;
use crate::cache::{LayerCaches, Recurrent};
use crate::config::Quantization;
use crate::error::{EngineError, Result};

type Exception = mlx_rs::error::Exception;

/// Head counts and widths of a gated delta layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeltaShape {
    pub(crate) k_heads: i32,
    pub(crate) v_heads: i32,
    pub(crate) k_dim: i32,
    pub(crate) v_dim: i32,
    pub(crate) kernel: i32,
    /// Separate q/k/v, z, b and a projections (Qwen3.5) rather than grouped ones (Qwen3-Next).
    pub(crate) separate: bool,
}

impl DeltaShape {
    fn key_width(&self) -> i32 {
        self.k_heads * self.k_dim
    }
    fn value_width(&self) -> i32 {
        self.v_heads * self.v_dim
    }
    fn conv_channels(&self) -> i32 {
        2 * self.key_width() + self.value_width()
    }
}

/// How a checkpoint stores the layer's input projections.
enum Projections {
    /// Qwen3-Next: `in_proj_qkvz` and `in_proj_ba`, grouped per key head.
    Grouped { qkvz: Linear, ba: Linear },
    /// Qwen3.5: `in_proj_qkv`, `in_proj_z`, `in_proj_b`, `in_proj_a`.
    Separate { qkv: Linear, z: Linear, b: Linear, a: Linear },
}

impl Projections {
    fn linears(&self) -> Vec<&Linear> {
        match self {
            Projections::Grouped { qkvz, ba } => vec![qkvz, ba],
            Projections::Separate { qkv, z, b, a } => vec![qkv, z, b, a],
        }
    }
}

pub(crate) struct GatedDelta {
    proj: Projections,
    /// Depthwise convolution weights `[channels, kernel, 1]`.
    conv: Array,
    a_log: Array,
    dt_bias: Array,
    norm: RmsNorm,
    out_proj: Linear,
    shape: DeltaShape,
}

/// `x · sigmoid(x)` compiled as mlx's `nn.silu` is.
fn silu(x: &Array) -> Result<Array> {
    let mut f = compile(|x: &Array| -> std::result::Result<Array, Exception> { x.multiply(ops::sigmoid(x)?) }, true);
    Ok(f(x)?)
}

impl GatedDelta {
    /// Reads the layer under `prefix` (`model.layers.{i}.linear_attn`).
    pub(crate) fn load(
        w: &mut WeightSet,
        prefix: &str,
        d: i32,
        shape: DeltaShape,
        eps: f32,
        q: Option<Quantization>,
    ) -> Result<GatedDelta> {
        let (kw, vw, c) = (shape.key_width(), shape.value_width(), shape.conv_channels());
        let mut linear = |name: &str, out: i32| w.linear(&format!("{prefix}.{name}"), d, out, false, q);
        let proj = if shape.separate {
            Projections::Separate {
                qkv: linear("in_proj_qkv", 2 * kw + vw)?,
                z: linear("in_proj_z", vw)?,
                b: linear("in_proj_b", shape.v_heads)?,
                a: linear("in_proj_a", shape.v_heads)?,
            }
        } else {
            Projections::Grouped {
                qkvz: linear("in_proj_qkvz", 2 * kw + 2 * vw)?,
                ba: linear("in_proj_ba", 2 * shape.v_heads)?,
            }
        };
        Ok(GatedDelta {
            proj,
            conv: w.take_shaped(&format!("{prefix}.conv1d.weight"), &[c, shape.kernel, 1])?,
            a_log: w.take_shaped(&format!("{prefix}.A_log"), &[shape.v_heads])?,
            dt_bias: w.take_shaped(&format!("{prefix}.dt_bias"), &[shape.v_heads])?,
            norm: w.norm(&format!("{prefix}.norm"), shape.v_dim, eps, false)?,
            out_proj: w.linear(&format!("{prefix}.out_proj"), vw, d, false, q)?,
            shape,
        })
    }

    /// Output `[rows, hidden]` of normed inputs `x` `[b·l, hidden]` over the pass's caches.
    pub(crate) fn forward(&self, x: &Array, (b, l): (i32, i32), cache: &mut LayerCaches) -> Result<Array> {
        let s = self.shape;
        let x = x.reshape(&[b, l, -1])?;
        let (mixed, z, beta_in, a) = self.project(&x, b, l)?;
        let dtype = x.dtype();
        let (carried, mask) = match cache {
            LayerCaches::One(c) => (c.recurrent().cloned(), None),
            LayerCaches::Fresh { lens, .. } => {
                let m: Vec<bool> = lens.iter().flat_map(|&n| (0..l).map(move |t| t < n)).collect();
                (None, Some(Array::from_slice(&m, &[b, l])))
            }
            LayerCaches::Decode { caches } => {
                let states = caches
                    .iter()
                    .map(|c| {
                        c.recurrent().cloned().ok_or(EngineError::InvalidRequest {
                            field: "",
                            message: "a linear-attention layer decoded before its prompt was run".into(),
                        })
                    })
                    .collect::<Result<Vec<Recurrent>>>()?;
                let conv = ops::concatenate(&states.iter().map(|r| &r.conv).collect::<Vec<_>>(), 0)?;
                let state = ops::concatenate(&states.iter().map(|r| &r.state).collect::<Vec<_>>(), 0)?;
                (Some(Recurrent { conv, state }), None)
            }
        };
        let (conv_state, state) = match carried {
            Some(r) => (r.conv, r.state),
            None => (
                ops::zeros_dtype(&[b, s.kernel - 1, s.conv_channels()], dtype)?,
                ops::zeros_dtype(&[b, s.v_heads, s.v_dim, s.k_dim], Dtype::Float32)?,
            ),
        };
        let mixed = match &mask {
            Some(m) => ops::select(&ops::expand_dims(m, -1)?, &mixed, Array::from_int(0).as_dtype(dtype)?)?,
            None => mixed,
        };
        let conv_input = ops::concatenate(&[conv_state, mixed], 1)?;
        let conv_out = silu(&ops::conv1d(&conv_input, &self.conv, 1, 0, 1, s.conv_channels())?)?;
        let parts = conv_out.split_at_indices(&[s.key_width(), 2 * s.key_width()], -1)?;
        let q = parts[0].reshape(&[b, l, s.k_heads, s.k_dim])?;
        let k = parts[1].reshape(&[b, l, s.k_heads, s.k_dim])?;
        let v = parts[2].reshape(&[b, l, s.v_heads, s.v_dim])?;
        let (q, k) = normalize_qk(&q, &k, s.k_dim)?;
        let (out, state) = self.recurrence(&q, &k, &v, &a, &beta_in, state, mask.as_ref())?;
        // The carried state: each row's last `kernel − 1` real inputs and its state.
        let keep = s.kernel - 1;
        match cache {
            LayerCaches::One(c) => {
                let conv = conv_input.try_index((.., l..l + keep, ..))?;
                c.set_recurrent(Recurrent { conv, state }, l);
            }
            LayerCaches::Fresh { caches, lens, .. } => {
                for (i, (c, &n)) in caches.iter_mut().zip(lens.iter()).enumerate() {
                    let row = i as i32..i as i32 + 1;
                    let conv = conv_input.try_index((row.clone(), n..n + keep, ..))?;
                    c.set_recurrent(Recurrent { conv, state: state.try_index((row, .., .., ..))? }, n);
                }
            }
            LayerCaches::Decode { caches } => {
                for (i, c) in caches.iter_mut().enumerate() {
                    let row = i as i32..i as i32 + 1;
                    let conv = conv_input.try_index((row.clone(), 1..1 + keep, ..))?;
                    c.set_recurrent(Recurrent { conv, state: state.try_index((row, .., .., ..))? }, 1);
                }
            }
        }
        let out = gated_norm(&out, &z, &self.norm)?;
        let out = self.out_proj.forward(&out.reshape(&[b * l, -1])?)?;
        // The model's last layer in a fresh pass: only each prompt's last position.
        match cache.kept_rows(l) {
            Some(rows) => Ok(out.take_axis(&rows, 0)?),
            None => Ok(out),
        }
    }

    /// The convolution's input (q, k and v side by side, `[b, l, channels]`), the gate z
    /// `[b, l, v_heads, v_dim]`, and b and a `[b, l, v_heads]`.
    fn project(&self, x: &Array, b: i32, l: i32) -> Result<(Array, Array, Array, Array)> {
        let s = self.shape;
        match &self.proj {
            Projections::Grouped { qkvz, ba } => {
                // mlx-lm's `fix_query_key_value_ordering`: grouped per key head.
                let per = s.v_heads / s.k_heads;
                let qkvz = qkvz.forward(x)?.reshape(&[b, l, s.k_heads, -1])?;
                let ba = ba.forward(x)?.reshape(&[b, l, s.k_heads, -1])?;
                let p = qkvz.split_at_indices(&[s.k_dim, 2 * s.k_dim, 2 * s.k_dim + per * s.v_dim], -1)?;
                let q2 = ba.split_at_indices(&[per], -1)?;
                let flat = |t: &Array| t.reshape(&[b, l, -1]);
                let mixed = ops::concatenate(&[flat(&p[0])?, flat(&p[1])?, flat(&p[2])?], -1)?;
                let z = p[3].reshape(&[b, l, -1, s.v_dim])?;
                Ok((mixed, z, q2[0].reshape(&[b, l, s.v_heads])?, q2[1].reshape(&[b, l, s.v_heads])?))
            }
            Projections::Separate { qkv, z, b: bp, a } => Ok((
                qkv.forward(x)?,
                z.forward(x)?.reshape(&[b, l, s.v_heads, s.v_dim])?,
                bp.forward(x)?,
                a.forward(x)?,
            )),
        }
    }

    /// mlx-lm's `gated_delta_update` (ops path): decay `g`, write strength `beta`, one
    /// compiled step per position; with `mask`, a padded position leaves the state as it was.
    #[allow(clippy::too_many_arguments)]
    fn recurrence(
        &self,
        q: &Array,
        k: &Array,
        v: &Array,
        a: &Array,
        b: &Array,
        mut state: Array,
        mask: Option<&Array>,
    ) -> Result<(Array, Array)> {
        let s = self.shape;
        let beta = ops::sigmoid(b)?;
        let g = compute_g(&self.a_log, a, &self.dt_bias)?;
        let per = s.v_heads / s.k_heads;
        let (q, k) = if per > 1 { (repeat_heads(q, per)?, repeat_heads(k, per)?) } else { (q.clone(), k.clone()) };
        let mut step = compile(step_ops, false);
        let l = q.shape()[1];
        let mut ys = Vec::with_capacity(l as usize);
        for t in 0..l {
            let at = |x: &Array| x.try_index((.., t, ..));
            let args = [at(&q)?, at(&k)?, at(v)?, at(&g)?, at(&beta)?, state.clone()];
            let out = step(&args)?;
            let (y, next) = (out[0].clone(), out[1].clone());
            state = match mask {
                Some(m) => {
                    let keep = m.try_index((.., t))?.reshape(&[-1, 1, 1, 1])?;
                    ops::select(&keep, &next, &state)?
                }
                None => next,
            };
            ys.push(y);
        }
        Ok((ops::stack(&ys, 1)?, state))
    }

    pub(crate) fn arrays<'a>(&'a self, out: &mut Vec<&'a Array>) {
        self.proj.linears().into_iter().for_each(|p| p.arrays(out));
        self.out_proj.arrays(out);
        out.extend([&self.conv, &self.a_log, &self.dt_bias, &self.norm.weight]);
    }

    pub(crate) fn nbytes(&self) -> usize {
        self.proj.linears().iter().map(|p| p.nbytes()).sum::<usize>()
            + self.out_proj.nbytes()
            + [&self.conv, &self.a_log, &self.dt_bias, &self.norm.weight].iter().map(|a| a.nbytes()).sum::<usize>()
    }
}

/// Each head repeated `n` times in place (mlx's `repeat(x, n, -2)`).
fn repeat_heads(x: &Array, n: i32) -> Result<Array> {
    let sh = x.shape().to_vec();
    let (b, l, h, d) = (sh[0], sh[1], sh[2], sh[3]);
    let x = ops::expand_dims(x, 3)?;
    Ok(ops::broadcast_to(&x, &[b, l, h, n, d])?.reshape(&[b, l, h * n, d])?)
}

/// L2-normalised q and k with the `k_dim^-0.5` readout scale folded into q (mlx-lm's
/// `normalize_qk`: `rms_norm` with eps scaled to match the L2 norm's).
fn normalize_qk(q: &Array, k: &Array, k_dim: i32) -> Result<(Array, Array)> {
    let inv_scale = (k_dim as f64).powf(-0.5);
    let eps = (1e-6 * inv_scale * inv_scale) as f32;
    let c = |v: f64, like: &Array| Array::from_f32(v as f32).as_dtype(like.dtype());
    let q = c(inv_scale * inv_scale, q)?.multiply(mlx_rs::fast::rms_norm(q, None, eps)?)?;
    let k = c(inv_scale, k)?.multiply(mlx_rs::fast::rms_norm(k, None, eps)?)?;
    Ok((q, k))
}

/// `exp(−exp(A_log) · softplus(a + dt_bias))`, compiled as mlx-lm's `compute_g`.
fn compute_g(a_log: &Array, a: &Array, dt_bias: &Array) -> Result<Array> {
    let f = |(a_log, a, dt_bias): (&Array, &Array, &Array)| -> std::result::Result<Array, Exception> {
        let x = a.add(dt_bias)?;
        let softplus = ops::logaddexp(&x, Array::from_int(0).as_dtype(x.dtype())?)?;
        ops::exp(ops::exp(a_log.as_dtype(Dtype::Float32)?)?.negative()?.multiply(&softplus)?)
    };
    let mut compiled = compile(f, true);
    Ok(compiled((a_log, a, dt_bias))?)
}

/// One position of the recurrence (mlx-lm's `_gated_delta_step_ops`, compiled likewise):
/// `[q, k, v, g, beta, state]` → `[y, state]`.
fn step_ops(args: &[Array]) -> std::result::Result<Vec<Array>, Exception> {
    let (q, k, v, g, beta, state) = (&args[0], &args[1], &args[2], &args[3], &args[4], &args[5]);
    let decay = ops::expand_dims_axes(g, &[-2, -1])?;
    let state = state.multiply(&decay)?;
    let k_row = ops::expand_dims(k, -2)?;
    let kv_mem = state.multiply(&k_row)?.sum_axis(-1, false)?;
    let delta = v.subtract(&kv_mem)?.multiply(ops::expand_dims(beta, -1)?)?;
    let state = state.add(k_row.multiply(ops::expand_dims(&delta, -1)?)?)?;
    let y = state.multiply(ops::expand_dims(q, -2)?)?.sum_axis(-1, false)?;
    Ok(vec![y.as_dtype(q.dtype())?, state])
}

/// mlx-lm's `Qwen3NextRMSNormGated`: `rms_norm(out) · silu(z)` in float32, cast back.
fn gated_norm(out: &Array, z: &Array, norm: &RmsNorm) -> Result<Array> {
    let x = norm.forward(out)?;
    let f = |(h, gate, x): (&Array, &Array, &Array)| -> std::result::Result<Array, Exception> {
        let g = gate.as_dtype(Dtype::Float32)?;
        let g = g.multiply(ops::sigmoid(&g)?)?;
        g.multiply(x.as_dtype(Dtype::Float32)?)?.as_dtype(h.dtype())
    };
    let mut compiled = compile(f, true);
    Ok(compiled((out, z, &x))?)
}
