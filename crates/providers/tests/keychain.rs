//! The OS keychain path on Linux: a real Secret Service (gnome-keyring-daemon, unlocked, in a
//! private D-Bus session with a throwaway HOME) stores, returns and forgets provider keys, and
//! `auto` picks it when it answers. The test re-runs itself inside `dbus-run-session`.

use std::process::Command;

use mlx_manager_core::{ExposeSecret, KeyStorage};
use mlx_manager_providers::{SecretMode, Secrets};

const INSIDE: &str = "MLX_MANAGER_KEYRING_SESSION";

#[test]
fn secret_service_stores_returns_and_forgets_keys() {
    if std::env::var_os(INSIDE).is_none() {
        let home = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let script = r#"echo -n throwaway | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec "$0" --exact secret_service_stores_returns_and_forgets_keys --nocapture"#;
        let out = Command::new("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .arg(&exe)
            .env(INSIDE, "1")
            .env("HOME", home.path())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .output()
            .expect("dbus-run-session (scripts/setup installs dbus and gnome-keyring)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("1 passed"), "the inner run did not run the test: {stdout}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::open(dir.path(), SecretMode::Auto).unwrap();
    assert_eq!(secrets.storage(), KeyStorage::Keychain, "auto picks the Secret Service when it answers");
    secrets.set("keychain-test", &"sk-keychain-0123456789".into()).unwrap();
    drop(secrets);
    let reopened = Secrets::open(dir.path(), SecretMode::Keychain).unwrap();
    assert_eq!(
        reopened.get("keychain-test").unwrap().as_ref().map(ExposeSecret::expose_secret),
        Some("sk-keychain-0123456789")
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written to the data dir");
    reopened.delete("keychain-test").unwrap();
    assert!(reopened.get("keychain-test").unwrap().is_none());
}
