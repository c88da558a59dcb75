//! The model pool as the window and the tray show it.

use mlx_manager_engine::ModelInfo;
use mlx_manager_server::ModelEntry;
use serde::{Deserialize, Serialize};

/// A model the user can load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct AvailableModel {
    /// The id clients use.
    pub id: String,
    /// Its folder.
    pub path: String,
    /// Weights on disk, bytes.
    #[specta(type = u32)]
    pub size_bytes: u64,
    /// Loaded now.
    pub loaded: bool,
    /// config.json's `model_type`, when readable.
    pub model_type: Option<String>,
    /// Whether the engine runs this family (known before anyone loads it).
    pub supported: bool,
}

/// A model in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct LoadedModel {
    /// The id clients use.
    pub id: String,
    /// Architecture (`llama`, `qwen2`, …).
    pub model_type: String,
    /// Weight dtype.
    pub dtype: String,
    /// `4-bit, group 64` when quantized (as its files store it).
    pub quantization: Option<String>,
    /// The bits of its quantized weights when they run from a dense copy made at load (on the
    /// CPU, when the copy fits the budget): why a 4-bit model's memory is several times its
    /// size on disk, and why it is fast there (the CPU's dense kernels; its quantized ones are
    /// many times slower). `serve --keep-quantized` turns the copy off.
    pub dequantized_from_bits: Option<i32>,
    /// Bytes in memory: weights plus the key/value cache of its running requests.
    #[specta(type = u32)]
    pub memory_bytes: u64,
    /// Of which key/value cache.
    #[specta(type = u32)]
    pub kv_cache_bytes: u64,
    /// Never evicted until unpinned or unloaded.
    pub pinned: bool,
    /// Seconds since it last served a request.
    #[specta(type = u32)]
    pub idle_seconds: u64,
    /// Requests served since it was loaded.
    #[specta(type = u32)]
    pub requests_served: u64,
}

/// Available and loaded models, and the memory they use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct ModelPool {
    /// Every registered model, by id.
    pub available: Vec<AvailableModel>,
    /// The loaded ones, by id.
    pub loaded: Vec<LoadedModel>,
    /// Weights and key/value caches in memory, bytes.
    #[specta(type = u32)]
    pub memory_in_use_bytes: u64,
    /// The pool's budget, bytes (None when RAM is unknown and no budget is set).
    #[specta(type = Option<u32>)]
    pub memory_budget_bytes: Option<u64>,
}

impl ModelPool {
    pub(crate) fn new(models: &[ModelEntry], loaded: Vec<ModelInfo>, budget: Option<u64>) -> ModelPool {
        let available = models
            .iter()
            .map(|m| AvailableModel {
                id: m.id.clone(),
                path: m.path.display().to_string(),
                size_bytes: m.size_bytes,
                loaded: loaded.iter().any(|l| l.id == m.id),
                model_type: m.model_type.clone(),
                supported: m.family.is_some() || m.model_type.is_none(),
            })
            .collect();
        let loaded: Vec<LoadedModel> = loaded
            .into_iter()
            .map(|l| LoadedModel {
                quantization: l.quantization.map(|(bits, group)| format!("{bits}-bit, group {group}")),
                dequantized_from_bits: dequantized_from_bits(l.quantization, l.dequantized),
                memory_bytes: (l.weight_bytes + l.kv_cache_bytes) as u64,
                kv_cache_bytes: l.kv_cache_bytes as u64,
                id: l.id,
                model_type: l.model_type,
                dtype: l.dtype,
                pinned: l.pinned,
                idle_seconds: l.idle_seconds,
                requests_served: l.requests_served,
            })
            .collect();
        let memory_in_use_bytes = loaded.iter().map(|l| l.memory_bytes).sum();
        ModelPool { available, loaded, memory_in_use_bytes, memory_budget_bytes: budget }
    }
}

/// The bits a model's weights were dequantized from, when it runs from a dense copy
/// (`ModelInfo::dequantized`, `LoadState::Ready`'s `dequantized`); None when it runs packed or
/// was never quantized.
pub(crate) fn dequantized_from_bits(quantization: Option<(i32, i32)>, dequantized: bool) -> Option<i32> {
    quantization.filter(|_| dequantized).map(|(bits, _)| bits)
}

/// `1.2 GB`, `340 MB`, `12 KB`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else {
        format!("{:.0} KB", b / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, quantization: Option<(i32, i32)>, dequantized: bool) -> ModelInfo {
        ModelInfo {
            id: id.into(),
            path: id.into(),
            model_type: "llama".into(),
            dtype: "float32".into(),
            quantization,
            dequantized,
            weight_bytes: 6_400,
            kv_cache_bytes: 0,
            context_length: None,
            pinned: false,
            requests_served: 0,
            idle_seconds: 0,
            output: Default::default(),
        }
    }

    #[test]
    fn a_model_running_from_a_dense_copy_names_the_bits_it_was_dequantized_from() {
        let loaded =
            vec![info("copy", Some((4, 64)), true), info("packed", Some((8, 32)), false), info("fp", None, false)];
        let pool = ModelPool::new(&[], loaded, None);
        let shown: Vec<_> =
            pool.loaded.iter().map(|l| (l.id.as_str(), l.quantization.as_deref(), l.dequantized_from_bits)).collect();
        assert_eq!(
            shown,
            [("copy", Some("4-bit, group 64"), Some(4)), ("packed", Some("8-bit, group 32"), None), ("fp", None, None)]
        );
    }
}
