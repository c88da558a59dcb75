//! Shared by the engine's benches: environment knobs, medians, the reference venv's Python and the
//! generated benchmark model.
#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};

use mlx_manager_engine::tiny::{write_family_model_with, write_tiny_model, TinySpec};

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn python() -> PathBuf {
    std::env::var_os("MLX_MANAGER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mlx-manager/venv"))
        .join("bin/python3")
}

/// Writes the benchmark model (fp32 Llama, 8/4 heads, vocabulary 2048) into `dir/bench-llama`.
pub fn bench_model(dir: &Path, hidden: usize, layers: usize) -> PathBuf {
    let path = dir.join("bench-llama");
    write_tiny_model(&path, &TinySpec::bench(hidden, layers)).expect("model");
    path
}

/// A benchmark model of another family at the bench widths (`hidden`, `layers`, 8/4 heads,
/// vocabulary 2048), with `overrides` of the family's tiny config and optional quantization.
#[allow(dead_code)] // used by engine_vs_mlx_lm, not pool_vs_mlx_lm
pub fn family_model(
    dir: &Path,
    family: &str,
    hidden: usize,
    layers: usize,
    bits: Option<u32>,
    overrides: serde_json::Value,
) -> PathBuf {
    let path = dir.join(format!("bench-{family}"));
    let spec = TinySpec { quantize: bits.map(|b| (b, 64)), ..TinySpec::bench(hidden, layers) };
    write_family_model_with(&path, family, &spec, &overrides).expect("model");
    path
}
