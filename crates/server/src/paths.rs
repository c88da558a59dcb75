//! Where MLX Manager keeps its data and finds models, shared by `serve` and the desktop shell.

use std::path::PathBuf;

/// `~/.mlx-manager` on macOS; the XDG data dir (`~/.local/share/mlx-manager`) elsewhere.
pub fn default_data_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join(".mlx-manager"));
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".local/share")))
        .map(|d| d.join("mlx-manager"))
}

/// The Hugging Face hub caches to scan for models: where huggingface_hub puts them
/// (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), then
/// `~/.cache/huggingface/hub` when that is another folder (see [`mlx_manager_library::hub_dirs`]).
pub fn hf_hub_dirs() -> Vec<PathBuf> {
    mlx_manager_library::hub_dirs()
}
