//! The encrypted-file key storage: keys survive reopening, are not in the file in clear, and a
//! damaged key file is a typed error that leaves the data alone.

use mlx_manager_core::KeyStorage;
use mlx_manager_providers::{ProviderError, SecretMode, Secrets};

const KEY: &str = "sk-live-0123456789abcdefXYZ";

#[test]
fn keys_round_trip_encrypted_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::open(dir.path(), SecretMode::File).unwrap();
    assert_eq!(secrets.storage(), KeyStorage::EncryptedFile);
    assert_eq!(secrets.get("openai").unwrap(), None);
    secrets.set("openai", KEY).unwrap();
    secrets.set("groq", "gsk-other").unwrap();
    drop(secrets);

    for name in ["secrets.enc", "secrets.key"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "{name} holds the key in clear");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is readable by others: {mode:o}");
    }

    let reopened = Secrets::open(dir.path(), SecretMode::File).unwrap();
    assert_eq!(reopened.get("openai").unwrap().as_deref(), Some(KEY));
    reopened.delete("openai").unwrap();
    reopened.delete("never-stored").unwrap();
    let again = Secrets::open(dir.path(), SecretMode::File).unwrap();
    assert_eq!(again.get("openai").unwrap(), None);
    assert_eq!(again.get("groq").unwrap().as_deref(), Some("gsk-other"));
}

#[test]
fn a_replaced_key_file_is_a_typed_error_and_the_keys_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    Secrets::open(dir.path(), SecretMode::File).unwrap().set("openai", KEY).unwrap();
    let sealed = std::fs::read(dir.path().join("secrets.enc")).unwrap();
    std::fs::write(dir.path().join("secrets.key"), [7u8; 32]).unwrap();
    match Secrets::open(dir.path(), SecretMode::File) {
        Err(ProviderError::Secret(message)) => assert!(message.contains("cannot be decrypted"), "{message}"),
        other => panic!("expected a typed error, got {:?}", other.map(|s| s.storage())),
    }
    assert_eq!(std::fs::read(dir.path().join("secrets.enc")).unwrap(), sealed, "nothing was destroyed");
}
