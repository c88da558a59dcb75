//! `ui/src/lib/bindings.ts` is generated from the Rust commands and events; this fails when the
//! committed file is stale. `UPDATE_BINDINGS=1 cargo test -p mlx-manager-app --test bindings`
//! rewrites it.

#[test]
fn committed_typescript_bindings_match_the_rust_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings.ts");
    let fresh = mlx_manager_app::typescript_bindings().expect("export bindings");
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &fresh).expect("write bindings");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run `UPDATE_BINDINGS=1 cargo test -p mlx-manager-app --test bindings` and commit it",
        path.display()
    );
}
