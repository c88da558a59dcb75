//! Settings survive a restart and a value of the wrong shape is a typed error, not a crash; the
//! providers crate's routing configuration round-trips through the `RoutingStore` trait.

use std::collections::BTreeMap;

use mlx_manager_core::{
    MatchType, PersistError, ProviderConfig, ProviderKind, RoutingConfig, RoutingRule, RoutingStore, RuleInput,
    Timeouts,
};
use mlx_manager_store::{Store, StoreError};

#[tokio::test(flavor = "multi_thread")]
async fn settings_survive_reopening_and_replace_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let store = Store::open(&path, 30).unwrap();
        assert_eq!(store.setting::<Timeouts>("timeouts").await.unwrap(), None);
        store.put_setting("timeouts", &Timeouts { chat_seconds: 60, ..Timeouts::default() }).await.unwrap();
        store.put_setting("timeouts", &Timeouts { chat_seconds: 61, ..Timeouts::default() }).await.unwrap();
    }
    let store = Store::open(&path, 30).unwrap();
    let got: Timeouts = store.setting("timeouts").await.unwrap().unwrap();
    assert_eq!(got, Timeouts { chat_seconds: 61, ..Timeouts::default() });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_setting_of_another_shape_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite"), 30).unwrap();
    store.put_setting("timeouts", &"not timeouts").await.unwrap();
    match store.setting::<Timeouts>("timeouts").await {
        Err(StoreError::Setting { key, .. }) => assert_eq!(key, "timeouts"),
        other => panic!("expected a Setting error, got {other:?}"),
    }
}

fn routing() -> RoutingConfig {
    RoutingConfig {
        providers: vec![ProviderConfig {
            name: "openai".into(),
            kind: ProviderKind::Openai,
            base_url: "https://api.openai.com/v1".into(),
            extra_headers: BTreeMap::from([("OpenAI-Organization".into(), "org-1".into())]),
            enabled: true,
            timeout_seconds: Some(30),
        }],
        rules: vec![RoutingRule {
            id: 1,
            rule: RuleInput {
                pattern: "gpt-".into(),
                match_type: MatchType::Prefix,
                priority: 10,
                backend: "openai".into(),
                backend_model: None,
                fallback: Some("local".into()),
                fallback_model: None,
                enabled: true,
            },
        }],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_configuration_round_trips_through_the_trait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let store: &dyn RoutingStore = &Store::open(&path, 30).unwrap();
        assert_eq!(store.load_routing().await.unwrap(), RoutingConfig::default(), "nothing saved yet");
        store.save_routing(routing()).await.unwrap();
    }
    let store = Store::open(&path, 30).unwrap();
    assert_eq!(store.load_routing().await.unwrap(), routing());
    // The same settings the catalog always used, so databases from before the trait still load.
    let providers: Vec<ProviderConfig> = store.setting("routing.providers").await.unwrap().unwrap();
    assert_eq!(providers, routing().providers);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_routing_setting_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite"), 30).unwrap();
    store.put_setting("routing.rules", &"not rules").await.unwrap();
    match store.load_routing().await {
        Err(PersistError::Unreadable { what, .. }) => assert_eq!(what, "routing.rules"),
        other => panic!("expected Unreadable, got {other:?}"),
    }
}
