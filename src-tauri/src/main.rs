//! `mlx-manager-app`: the desktop app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    use clap::Parser;
    // Before any thread starts (it may set OPENBLAS_CORETYPE for OpenBLAS's initialiser).
    mlx_manager_engine::cpu_kernels::select();
    std::process::exit(mlx_manager_app::run(mlx_manager_app::Args::parse()));
}
