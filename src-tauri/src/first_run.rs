//! The first run: with no model to serve, the window opens on a welcome view that explains the
//! endpoint and offers the model library, or (on Linux, where there is no Metal and few people
//! have MLX models) the tiny model `scripts/run` serves, written by the same generator as
//! `mlx-manager make-tiny-model`.

use std::path::{Path, PathBuf};

use tauri::State;

use crate::controller::Controller;
use crate::error::CommandError;
use crate::models::ModelPool;

/// The tiny model's id (and folder name), as `scripts/run` names it.
pub const TINY_MODEL: &str = "tiny-llama";

/// The model folders the app wrote itself (each folder in `dir` with a `config.json`), by id.
pub(crate) fn own_models(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("config.json").is_file())
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .filter(|(id, _)| !id.starts_with('.'))
        .collect();
    found.sort();
    found
}

/// Writes the tiny random-weight Llama (`mlx-manager make-tiny-model --family llama --seed 0`)
/// into the app's own models folder, once, and serves it as `tiny-llama` from now on (this
/// launch and the next ones). It answers in gibberish: it is there to try the endpoint.
#[tauri::command]
#[specta::specta]
pub async fn install_tiny_model(ctl: State<'_, Controller>) -> Result<ModelPool, CommandError> {
    let dir = ctl.own_models_dir().join(TINY_MODEL);
    if !dir.join("config.json").is_file() {
        let target = dir.clone();
        tokio::task::spawn_blocking(move || {
            use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
            // Written next to its place and renamed, so a half-written folder is never served.
            let partial = target.with_file_name(format!(".{TINY_MODEL}.partial"));
            let _ = std::fs::remove_dir_all(&partial);
            let spec = TinySpec { max_position_embeddings: 4096, ..TinySpec::new(TinyFamily::Llama) };
            write_tiny_model(&partial, &spec)?;
            std::fs::rename(&partial, &target)
                .map_err(|e| mlx_manager_engine::EngineError::Io { path: target.clone(), source: e })
        })
        .await
        .map_err(|e| CommandError::ModelLoad { model: TINY_MODEL.into(), message: e.to_string() })?
        .map_err(|e| CommandError::from_engine(e, TINY_MODEL))?;
    }
    ctl.register_model(TINY_MODEL, &dir).await;
    ctl.model_pool().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_models_are_the_folders_with_a_config() {
        let dir = tempfile::tempdir().unwrap();
        assert!(own_models(&dir.path().join("missing")).is_empty());
        std::fs::create_dir_all(dir.path().join("b-model")).unwrap();
        std::fs::write(dir.path().join("b-model/config.json"), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("a-model")).unwrap();
        std::fs::write(dir.path().join("a-model/config.json"), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("half-written")).unwrap();
        std::fs::create_dir_all(dir.path().join(".tiny-llama.partial")).unwrap();
        std::fs::write(dir.path().join(".tiny-llama.partial/config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("stray.txt"), "").unwrap();
        let ids: Vec<String> = own_models(dir.path()).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["a-model", "b-model"]);
    }
}
