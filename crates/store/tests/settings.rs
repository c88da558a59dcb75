//! Settings survive a restart and a value of the wrong shape is a typed error, not a crash.

use mlx_manager_core::Timeouts;
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
