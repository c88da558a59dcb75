//! Tauri's build step (config, capabilities, icons) and an rpath to the prebuilt libmlx (Linux).
fn main() {
    if let Ok(dir) = std::env::var("DEP_MLX_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    tauri_build::build();
}
