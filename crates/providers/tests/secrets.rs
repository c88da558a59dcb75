//! The encrypted-file key storage: keys survive reopening, are not in the file in clear, and a
//! damaged key file is a typed error that leaves the data alone. Keys held in memory never show in
//! `{:?}`, and the catalog persists through the `RoutingStore` trait alone.

use std::sync::Arc;

use mlx_manager_core::{
    ExposeSecret, KeyStorage, MatchType, PersistFuture, ProviderInput, ProviderKind, RoutingConfig, RoutingStore,
    RuleInput, SecretString,
};
use mlx_manager_providers::{Catalog, ProviderError, SecretMode, Secrets};

const KEY: &str = "sk-live-0123456789abcdefXYZ";

#[test]
fn keys_round_trip_encrypted_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::open(dir.path(), SecretMode::File).unwrap();
    assert_eq!(secrets.storage(), KeyStorage::EncryptedFile);
    assert!(secrets.get("openai").unwrap().is_none());
    secrets.set("openai", &KEY.into()).unwrap();
    secrets.set("groq", &"gsk-other".into()).unwrap();
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
    assert_eq!(reopened.get("openai").unwrap().as_ref().map(ExposeSecret::expose_secret), Some(KEY));
    reopened.delete("openai").unwrap();
    reopened.delete("never-stored").unwrap();
    let again = Secrets::open(dir.path(), SecretMode::File).unwrap();
    assert!(again.get("openai").unwrap().is_none());
    assert_eq!(again.get("groq").unwrap().as_ref().map(ExposeSecret::expose_secret), Some("gsk-other"));
}

#[test]
fn a_replaced_key_file_is_a_typed_error_and_the_keys_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    Secrets::open(dir.path(), SecretMode::File).unwrap().set("openai", &KEY.into()).unwrap();
    let sealed = std::fs::read(dir.path().join("secrets.enc")).unwrap();
    std::fs::write(dir.path().join("secrets.key"), [7u8; 32]).unwrap();
    match Secrets::open(dir.path(), SecretMode::File) {
        Err(ProviderError::Secret(message)) => assert!(message.contains("cannot be decrypted"), "{message}"),
        other => panic!("expected a typed error, got {:?}", other.map(|s| s.storage())),
    }
    assert_eq!(std::fs::read(dir.path().join("secrets.enc")).unwrap(), sealed, "nothing was destroyed");
}

/// Saves in memory (what the store crate's database does for the binaries).
#[derive(Default)]
struct MemoryStore(std::sync::Mutex<RoutingConfig>);

impl RoutingStore for MemoryStore {
    fn load_routing(&self) -> PersistFuture<'_, RoutingConfig> {
        let saved = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(saved) })
    }

    fn save_routing(&self, config: RoutingConfig) -> PersistFuture<'_, ()> {
        *self.0.lock().unwrap() = config;
        Box::pin(async { Ok(()) })
    }
}

fn input(name: &str, key: Option<&str>) -> ProviderInput {
    ProviderInput {
        name: name.into(),
        kind: ProviderKind::Openai,
        base_url: String::new(),
        extra_headers: Default::default(),
        enabled: true,
        timeout_seconds: None,
        api_key: key.map(SecretString::from),
    }
}

fn assert_redacted(what: &str, value: &impl std::fmt::Debug) {
    for text in [format!("{value:?}"), format!("{value:#?}")] {
        assert!(!text.contains(KEY), "{what} prints the key: {text}");
        assert!(!text.contains(&KEY[..12]), "{what} prints part of the key: {text}");
    }
}

#[tokio::test]
async fn no_struct_holding_a_key_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let secrets = Secrets::open(dir.path(), SecretMode::File).unwrap();
    let catalog = Catalog::open(store.clone(), secrets).await.unwrap();

    let given = input("openai", Some(KEY));
    assert_redacted("ProviderInput", &given);
    let view = catalog.create_provider(given).await.unwrap();
    assert_eq!(view.api_key_hint.as_deref(), Some("…fXYZ"));
    catalog
        .create_rule(RuleInput {
            pattern: "gpt-".into(),
            match_type: MatchType::Prefix,
            priority: 0,
            backend: "openai".into(),
            backend_model: None,
            fallback: Some("local".into()),
            fallback_model: None,
            enabled: true,
        })
        .await
        .unwrap();

    let provider = catalog.provider("openai").unwrap();
    assert_redacted("Provider", &provider);
    assert_redacted("Route", &catalog.resolve("gpt-4o").expect("the rule matches"));
    assert_redacted("ProviderView", &catalog.providers());
    assert_redacted("the saved configuration", &*store.0.lock().unwrap());
    let secrets = Secrets::open(dir.path(), SecretMode::File).unwrap();
    assert_redacted("Secrets", &secrets);
    let stored = secrets.get("openai").unwrap().expect("the key was stored");
    assert_redacted("the stored key", &stored);
    assert_eq!(stored.expose_secret(), KEY, "exposed on purpose, it is the key");
}

#[tokio::test]
async fn the_catalog_saves_through_its_store_and_reopens_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let catalog = Catalog::open(store.clone(), Secrets::open(dir.path(), SecretMode::File).unwrap()).await.unwrap();
    catalog.create_provider(input("openai", Some(KEY))).await.unwrap();
    match catalog.create_provider(input("anthropic", None)).await {
        Err(e @ ProviderError::MissingKey { .. }) => assert_eq!(e.field(), Some("api_key")),
        other => panic!("expected MissingKey, got {other:?}"),
    }
    let saved = store.0.lock().unwrap().clone();
    assert_eq!(saved.providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["openai"]);

    let reopened = Catalog::open(store, Secrets::open(dir.path(), SecretMode::File).unwrap()).await.unwrap();
    let view = reopened.providers().pop().expect("the provider was saved");
    assert_eq!(view.config.name, "openai");
    assert_eq!(view.api_key_hint.as_deref(), Some("…fXYZ"), "its key came back from the key storage");
}
