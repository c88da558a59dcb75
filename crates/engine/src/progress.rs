//! Where each model's loading stands, for the UI and `GET /admin/models/{id}/loading-progress`:
//! a watch per model (a late subscriber sees the latest state at once) and one broadcast of every
//! change (the desktop shell forwards it as an event).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// One model's loading state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LoadState {
    /// Not in memory (never loaded, unloaded, evicted or expired).
    NotLoaded,
    /// Being loaded: config and tokenizer, weight files checked, layers built, weights read
    /// (`fraction` moves through those stages, 0 to 1).
    Loading {
        /// 0 … 1.
        fraction: f32,
    },
    /// In memory and serving.
    Ready {
        /// Bytes of weights in memory (of the dense copy when `dequantized`).
        weight_bytes: u64,
        /// `(bits, group_size)` when quantized, as the files store it (`ModelInfo::quantization`).
        quantization: Option<(i32, i32)>,
        /// Its quantized weights run from a dense copy made at load (`ModelInfo::dequantized`):
        /// said as the load ends, since it explains `weight_bytes` (several times the files)
        /// and the speed on the CPU.
        dequantized: bool,
        /// How long the load took.
        load_ms: u64,
    },
    /// The last load failed.
    Failed {
        /// Why (the engine's error).
        message: String,
    },
}

impl LoadState {
    /// Whether no further change is expected without a new load.
    pub fn is_settled(&self) -> bool {
        !matches!(self, LoadState::Loading { .. })
    }
}

/// A change of one model's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadEvent {
    /// The model id.
    pub model: String,
    /// Its new state.
    #[serde(flatten)]
    pub state: LoadState,
}

/// Shared between the engine thread (publisher) and handles (subscribers).
#[derive(Clone)]
pub(crate) struct LoadProgress {
    models: Arc<Mutex<HashMap<String, watch::Sender<LoadState>>>>,
    all: broadcast::Sender<LoadEvent>,
}

impl Default for LoadProgress {
    fn default() -> Self {
        LoadProgress { models: Arc::default(), all: broadcast::channel(256).0 }
    }
}

impl LoadProgress {
    pub(crate) fn publish(&self, model: &str, state: LoadState) {
        let mut models = self.models.lock().expect("progress lock");
        let sender = models.entry(model.to_string()).or_insert_with(|| watch::channel(LoadState::NotLoaded).0);
        if *sender.borrow() == state {
            return;
        }
        sender.send_replace(state.clone());
        let _ = self.all.send(LoadEvent { model: model.to_string(), state });
    }

    pub(crate) fn subscribe(&self, model: &str) -> watch::Receiver<LoadState> {
        let mut models = self.models.lock().expect("progress lock");
        models.entry(model.to_string()).or_insert_with(|| watch::channel(LoadState::NotLoaded).0).subscribe()
    }

    pub(crate) fn events(&self) -> broadcast::Receiver<LoadEvent> {
        self.all.subscribe()
    }
}
