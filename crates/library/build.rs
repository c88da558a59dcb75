//! This crate never links MLX, but its tests write tiny models with the engine (a
//! dev-dependency), so their binaries load libmlx at run time. Build scripts do not see a
//! dev-dependency's `DEP_MLX_LIBDIR`, so the test binaries get the rpath mlx-sys would use:
//! `MLX_SYS_MLX_DIR` (as scripts/env.sh sets it), else the project's venv.
use std::path::PathBuf;

fn venv_mlx() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let lib = cache.join("mlx-manager/venv/lib");
    std::fs::read_dir(lib).ok()?.filter_map(|e| e.ok()).map(|e| e.path().join("site-packages/mlx")).find(|p| p.is_dir())
}

fn main() {
    println!("cargo:rerun-if-env-changed=MLX_SYS_MLX_DIR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    if let Some(dir) = std::env::var_os("MLX_SYS_MLX_DIR").map(PathBuf::from).or_else(venv_mlx) {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}", dir.join("lib").display());
    }
}
