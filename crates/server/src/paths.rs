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

/// The Hugging Face hub caches to scan for models: `$HF_HOME/hub`, then `~/.cache/huggingface/hub`.
pub fn hf_hub_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = std::env::var_os("HF_HOME") {
        dirs.push(PathBuf::from(home).join("hub"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/huggingface/hub"));
    }
    dirs
}
