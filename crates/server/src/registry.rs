//! Which model ids the server knows, and where their folders are: folders given on the command
//! line (id = folder name) and models found in the Hugging Face cache (id = `org/name`).

use crate::error::ApiError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// A known model folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelEntry {
    /// The id clients use.
    pub id: String,
    /// The folder.
    pub path: PathBuf,
    /// Bytes of weight files on disk.
    pub size_bytes: u64,
    /// config.json's `model_type`, when readable.
    pub model_type: Option<String>,
    /// The engine family that runs it; None when this engine cannot.
    pub family: Option<&'static str>,
    /// Its context window per config.json, when stated (requests are checked against it before
    /// the model is loaded).
    pub context_length: Option<usize>,
}

/// Model ids → folders.
#[derive(Debug, Default)]
pub struct Registry {
    models: RwLock<BTreeMap<String, ModelEntry>>,
}

/// Bytes of a folder's weight files, following links (a Hugging Face snapshot's files are links
/// into its blobs).
fn size_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl Registry {
    /// Registers a folder under an id (replacing any previous one).
    pub fn insert(&self, id: impl Into<String>, path: impl Into<PathBuf>) {
        let (id, path) = (id.into(), path.into());
        let size_bytes = size_on_disk(&path);
        let arch = mlx_manager_engine::config::architecture(&path);
        let entry = ModelEntry {
            id: id.clone(),
            path,
            size_bytes,
            model_type: arch.model_type,
            family: arch.family,
            context_length: arch.context_length,
        };
        self.models.write().expect("registry lock").insert(id, entry);
    }

    /// Registers an entry read before (by another registry) without reading its folder again.
    pub(crate) fn insert_entry(&self, entry: ModelEntry) {
        self.models.write().expect("registry lock").insert(entry.id.clone(), entry);
    }

    /// Registers a folder under its folder name; returns the id.
    pub fn insert_folder(&self, path: &Path) -> String {
        let id =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        self.insert(id.clone(), path);
        id
    }

    /// Registers every model in a Hugging Face hub cache under its repo id (`org/name`): the
    /// snapshot the library's scan offers (`refs/main`'s when complete, else the newest complete
    /// one; partial or corrupted downloads are not offered); returns how many were found.
    pub fn scan_hf_cache(&self, hub: &Path) -> usize {
        let mut found = 0;
        for repo in mlx_manager_library::scan(hub) {
            if let Some(path) = repo.servable {
                self.insert(repo.repo.to_string(), path);
                found += 1;
            }
        }
        found
    }

    /// Forgets an id; returns its entry.
    pub fn remove(&self, id: &str) -> Option<ModelEntry> {
        self.models.write().expect("registry lock").remove(id)
    }

    /// The folder of an id.
    pub fn get(&self, id: &str) -> Option<ModelEntry> {
        self.models.read().expect("registry lock").get(id).cloned()
    }

    /// The entry of a model a request may load: known, and of a family this engine runs (a
    /// typed client error otherwise, before anything is loaded or evicted).
    pub fn servable(&self, id: &str) -> Result<ModelEntry, ApiError> {
        let entry = self.get(id).ok_or_else(|| ApiError::ModelNotFound(id.to_string()))?;
        match (&entry.family, &entry.model_type) {
            (None, Some(model_type)) => {
                Err(ApiError::UnsupportedArchitecture { model: id.to_string(), model_type: model_type.clone() })
            }
            // No readable config: the load reports what is wrong with the folder.
            _ => Ok(entry),
        }
    }

    /// All entries, sorted by id.
    pub fn list(&self) -> Vec<ModelEntry> {
        self.models.read().expect("registry lock").values().cloned().collect()
    }
}
