//! `mlx-manager-app`: the desktop app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    use clap::Parser;
    std::process::exit(mlx_manager_app::run(mlx_manager_app::Args::parse()));
}
