//! Events the shell sends to the window (typed, exported to TypeScript with the commands).

use mlx_manager_core::AuditEntry;
use serde::{Deserialize, Serialize};

use crate::controller::ServerStatus;
use crate::models::ModelPool;
use crate::settings::AppSettings;

/// An audit entry was written (right after its commit).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct AuditEntryAppended(pub AuditEntry);

/// The audit log changed: refresh the stats. `lagged` means some live entries were not delivered
/// (the window fell behind), so the list should be reloaded too.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct StatsChanged {
    /// Entries written since the last notice.
    pub new_entries: u32,
    /// The live feed dropped entries for this window: re-query.
    pub lagged: bool,
}

/// The listener started, stopped or failed.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct ServerStatusChanged(pub ServerStatus);

/// A model was loaded, unloaded, evicted, expired, pinned or unpinned.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct ModelPoolChanged(pub ModelPool);

/// Settings were saved (from this window or another).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct SettingsChanged(pub AppSettings);

/// A running export wrote more rows.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct ExportProgress {
    /// The file being written.
    pub path: String,
    /// Rows written so far.
    #[specta(type = u32)]
    pub rows: u64,
}

/// A model's loading state changed (load started, progressed, finished or failed; or unloaded).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct ModelLoading {
    /// The model id.
    pub model: String,
    /// `not_loaded`, `loading`, `ready` or `failed`.
    pub state: String,
    /// How far a load has got (0 … 1) while `loading`.
    pub fraction: Option<f32>,
    /// Why the load failed, when `failed`.
    pub message: Option<String>,
    /// When `ready`: the bits of its quantized weights if they run from a dense copy made at
    /// load, as `LoadedModel::dequantized_from_bits` (why its memory is several times its files).
    pub dequantized_from_bits: Option<i32>,
}

impl From<mlx_manager_engine::LoadEvent> for ModelLoading {
    fn from(e: mlx_manager_engine::LoadEvent) -> Self {
        use mlx_manager_engine::LoadState;
        let mut dequantized_from_bits = None;
        let (state, fraction, message) = match e.state {
            LoadState::NotLoaded => ("not_loaded", None, None),
            LoadState::Loading { fraction } => ("loading", Some(fraction), None),
            LoadState::Ready { quantization, dequantized, .. } => {
                dequantized_from_bits = crate::models::dequantized_from_bits(quantization, dequantized);
                ("ready", Some(1.0), None)
            }
            LoadState::Failed { message } => ("failed", None, Some(message)),
        };
        ModelLoading { model: e.model, state: state.to_string(), fraction, message, dequantized_from_bits }
    }
}

/// A download's status changed: progress (at most four times a second while bytes flow) or a
/// change of state (paused, resumed, failed, completed, cancelled).
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct DownloadProgress(pub crate::library::Download);

#[cfg(test)]
mod tests {
    use mlx_manager_engine::{LoadEvent, LoadState};

    use super::ModelLoading;

    fn ready(quantization: Option<(i32, i32)>, dequantized: bool) -> ModelLoading {
        let state = LoadState::Ready { weight_bytes: 6_400, quantization, dequantized, load_ms: 12 };
        ModelLoading::from(LoadEvent { model: "m".into(), state })
    }

    #[test]
    fn a_model_ready_from_a_dense_copy_names_the_bits_it_was_dequantized_from() {
        let copy = ready(Some((4, 64)), true);
        assert_eq!((copy.state.as_str(), copy.fraction, copy.dequantized_from_bits), ("ready", Some(1.0), Some(4)));
        assert_eq!(ready(Some((8, 32)), false).dequantized_from_bits, None, "packed");
        assert_eq!(ready(None, false).dequantized_from_bits, None, "never quantized");
        let loading = ModelLoading::from(LoadEvent { model: "m".into(), state: LoadState::Loading { fraction: 0.5 } });
        assert_eq!(loading.dequantized_from_bits, None);
    }
}
