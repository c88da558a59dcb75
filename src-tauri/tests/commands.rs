//! Every command through Tauri's mock runtime (the real IPC path: JSON in, JSON out), over a real
//! controller: real engine on a generated tiny model, real store, real HTTP listener on port 0.
//! Success and typed-error cases.

mod support;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use mlx_manager_app::desktop::DesktopInfo;
use mlx_manager_app::models::ModelPool;
use mlx_manager_app::settings::{AppSettings, DesktopSettings, PoolSettings, ServerConfig};
use mlx_manager_app::{CommandError, Controller, ControllerOptions, ServerStatus};
use mlx_manager_core::{AuditPage, AuditStats, ExposeSecret, SecretString, Timeouts};
use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use serde_json::{json, Value};
use support::invoke;
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::{App, Manager, WebviewWindow};

const MODEL: &str = "tiny-app";
/// The model the HTTP requests use (so they never race with the pool test's model).
const CHAT_MODEL: &str = "tiny-chat";
/// A one-layer model with `CHAT_MODEL`'s vocabulary: its draft in the speculative decoding test.
const DRAFT_MODEL: &str = "tiny-draft";

/// Held by the tests that start the listener or change the pool settings (they share one
/// controller: its listener and its saved pool).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One controller (one engine thread) per test binary; each test gets its own mock app over it.
fn controller() -> Controller {
    static CTL: OnceLock<(Controller, tempfile::TempDir)> = OnceLock::new();
    CTL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join(MODEL);
        write_tiny_model(&model, &TinySpec::new(TinyFamily::Llama)).unwrap();
        let chat = dir.path().join(CHAT_MODEL);
        write_tiny_model(&chat, &TinySpec::new(TinyFamily::Qwen2)).unwrap();
        let draft = dir.path().join(DRAFT_MODEL);
        write_tiny_model(&draft, &TinySpec { layers: 1, seed: 3, ..TinySpec::new(TinyFamily::Qwen2) }).unwrap();
        let options = ControllerOptions {
            data_dir: dir.path().join("data"),
            models: vec![model, chat, draft],
            scan_hf_cache: false,
            port_override: Some(0),
            key_storage: mlx_manager_providers::SecretMode::File,
        };
        let ctl = tauri::async_runtime::block_on(Controller::open(options)).unwrap();
        (ctl, dir)
    })
    .0
    .clone()
}

fn app() -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let app = mock_builder()
        .invoke_handler(mlx_manager_app::specta_builder::<MockRuntime>().invoke_handler())
        .manage(controller())
        .build(mock_context(noop_assets()))
        .unwrap();
    // No autostart plugin in this test app: launch at login is refused (the real entry is
    // written and removed in the WebKit end-to-end test, under a home of its own).
    app.manage(mlx_manager_app::desktop::Desktop::new(app.handle().clone()));
    let window = tauri::WebviewWindowBuilder::new(&app, "settings", Default::default()).build().unwrap();
    (app, window)
}

fn invalid_field(r: Result<impl std::fmt::Debug, CommandError>) -> String {
    match r {
        Err(CommandError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

#[test]
fn server_lifecycle_settings_timeouts_and_audit() {
    let _serial = serial();
    let (_app, w) = app();
    let status: ServerStatus = invoke(&w, "start_server", json!({})).unwrap();
    assert!(status.running, "{status:?}");
    let url = status.url.clone().unwrap();
    assert_eq!(invoke::<ServerStatus>(&w, "server_status", json!({})).unwrap(), status);
    assert_eq!(http().get(format!("{url}/health")).send().unwrap().status(), 200);

    // Timeouts: saved, applied to the running server at once, validated, reset.
    let t = Timeouts { chat_seconds: 42, completions_seconds: 43, embeddings_seconds: 44 };
    assert_eq!(invoke::<Timeouts>(&w, "set_timeouts", json!({ "timeouts": t })).unwrap(), t);
    let served: Timeouts = http().get(format!("{url}/admin/settings/timeouts")).send().unwrap().json().unwrap();
    assert_eq!(served, t);
    assert_eq!(invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().timeouts, t);
    let bad = json!({ "timeouts": { "chat_seconds": 0, "completions_seconds": 60, "embeddings_seconds": 60 } });
    assert_eq!(invalid_field(invoke::<Timeouts>(&w, "set_timeouts", bad)), "chat_seconds");
    let bad = json!({ "timeouts": { "chat_seconds": 60, "completions_seconds": 60, "embeddings_seconds": 90_000 } });
    assert_eq!(invalid_field(invoke::<Timeouts>(&w, "set_timeouts", bad)), "embeddings_seconds");
    assert_eq!(invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().timeouts, t, "bad values not saved");
    assert_eq!(invoke::<Timeouts>(&w, "reset_timeouts", json!({})).unwrap(), Timeouts::default());

    // A real request shows up in the audit log: list, stats, export.
    let body = json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
    let r = http().post(format!("{url}/v1/chat/completions")).json(&body).send().unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let filter = json!({ "model": CHAT_MODEL });
    let mut page: AuditPage =
        invoke(&w, "audit_page", json!({ "filter": filter, "cursor": null, "limit": 10 })).unwrap();
    for _ in 0..50 {
        if page.entries.iter().any(|e| e.request_id == request_id) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        page = invoke(&w, "audit_page", json!({ "filter": filter, "cursor": null, "limit": 10 })).unwrap();
    }
    let entry = page.entries.iter().find(|e| e.request_id == request_id).expect("request audited");
    assert_eq!(entry.endpoint, "/v1/chat/completions");
    assert_eq!(entry.completion_tokens, 3);
    let stats: AuditStats = invoke(&w, "audit_stats", json!({ "filter": filter })).unwrap();
    assert!(stats.total >= 1 && stats.by_model.contains_key(CHAT_MODEL), "{stats:?}");
    // The original product's name for the total, alongside ours.
    let raw: Value = invoke(&w, "audit_stats", json!({ "filter": filter })).unwrap();
    assert_eq!(raw["total_requests"], raw["total"], "{raw}");
    let bad_limit = invoke::<AuditPage>(&w, "audit_page", json!({ "filter": {}, "cursor": null, "limit": 5000 }));
    assert_eq!(invalid_field(bad_limit), "limit");
    let bad_range = json!({ "filter": { "start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-01T00:00:00Z" } });
    assert!(matches!(invoke::<AuditStats>(&w, "audit_stats", bad_range), Err(CommandError::Invalid { .. })));

    let out = tempfile::tempdir().unwrap();
    let csv_path = out.path().join("audit.csv");
    let result: Value =
        invoke(&w, "export_audit", json!({ "filter": filter, "format": "csv", "path": csv_path.to_str().unwrap() }))
            .unwrap();
    assert!(result["rows"].as_u64().unwrap() >= 1, "{result}");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.starts_with("timestamp,request_id,model,") && csv.contains(&request_id), "{csv}");
    let nowhere = out.path().join("missing-dir/audit.jsonl");
    let failed = invoke::<Value>(
        &w,
        "export_audit",
        json!({ "filter": {}, "format": "jsonl", "path": nowhere.to_str().unwrap() }),
    );
    assert!(matches!(failed, Err(CommandError::Export { .. })), "{failed:?}");

    // Listener settings: validated; a port in use is a typed error and the old listener keeps serving.
    let config = |host: &str, port: u16, key: Option<&str>, origins: &[&str]| {
        json!({ "config": ServerConfig {
            host: host.into(),
            port,
            api_key: key.map(SecretString::from),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            // Metrics on together with a key (so they are behind it).
            metrics: key.is_some(),
        }})
    };
    assert_eq!(
        invalid_field(invoke::<ServerStatus>(&w, "apply_server_config", config("my mac", 0, None, &[]))),
        "host"
    );
    let short_key = config("127.0.0.1", 0, Some("short"), &[]);
    assert_eq!(invalid_field(invoke::<ServerStatus>(&w, "apply_server_config", short_key)), "api_key");
    let bad_origin = config("127.0.0.1", 0, None, &["localhost:3000"]);
    assert_eq!(invalid_field(invoke::<ServerStatus>(&w, "apply_server_config", bad_origin)), "allowed_origins");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = config("127.0.0.1", taken.local_addr().unwrap().port(), None, &[]);
    let err = invoke::<ServerStatus>(&w, "apply_server_config", busy);
    assert!(matches!(err, Err(CommandError::Bind { .. })), "{err:?}");
    let after: ServerStatus = invoke(&w, "server_status", json!({})).unwrap();
    assert!(after.running, "previous listener restored: {after:?}");
    let url = after.url.unwrap();
    assert_eq!(http().get(format!("{url}/health")).send().unwrap().status(), 200);
    assert_eq!(http().get(format!("{url}/metrics")).send().unwrap().status(), 404, "metrics off by default");

    // An API key applies to the new listener (and guards the metrics turned on with it).
    let key: String = invoke(&w, "generate_api_key", json!({})).unwrap();
    assert!(key.starts_with("mlxm-") && key.len() > 30, "{key}");
    let status: ServerStatus =
        invoke(&w, "apply_server_config", config("127.0.0.1", 0, Some(&key), &["http://localhost:3000"])).unwrap();
    let url = status.url.unwrap();
    assert_eq!(http().get(format!("{url}/v1/models")).send().unwrap().status(), 401);
    assert_eq!(http().get(format!("{url}/v1/models")).bearer_auth(&key).send().unwrap().status(), 200);
    assert_eq!(http().get(format!("{url}/metrics")).send().unwrap().status(), 401);
    let metrics = http().get(format!("{url}/metrics")).bearer_auth(&key).send().unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().unwrap().contains("mlx_manager_request_duration_seconds"));
    let saved: AppSettings = invoke(&w, "get_settings", json!({})).unwrap();
    assert_eq!(saved.server.api_key.as_ref().map(ExposeSecret::expose_secret), Some(key.as_str()));
    assert!(!format!("{saved:?}").contains(&key), "the settings' Debug prints the key: {saved:?}");

    let stopped: ServerStatus = invoke(&w, "stop_server", json!({})).unwrap();
    assert!(!stopped.running && stopped.url.is_none());
    assert!(http().get(format!("{url}/health")).send().is_err(), "listener closed");
}

#[test]
fn model_pool_commands() {
    let _serial = serial();
    let (_app, w) = app();
    let pool: ModelPool = invoke(&w, "model_pool", json!({})).unwrap();
    let available = pool.available.iter().find(|m| m.id == MODEL).expect("registered");
    assert!(available.size_bytes > 0 && !available.loaded);

    let pool: ModelPool = invoke(&w, "preload_model", json!({ "id": MODEL })).unwrap();
    let loaded = pool.loaded.iter().find(|m| m.id == MODEL).expect("loaded");
    assert!(loaded.pinned && loaded.memory_bytes > 0 && loaded.dtype == "float32", "{loaded:?}");
    assert!(pool.memory_in_use_bytes >= loaded.memory_bytes);

    let pool: ModelPool = invoke(&w, "set_pinned", json!({ "id": MODEL, "pinned": false })).unwrap();
    assert!(!pool.loaded.iter().find(|m| m.id == MODEL).unwrap().pinned);
    let pool: ModelPool = invoke(&w, "unload_model", json!({ "id": MODEL })).unwrap();
    assert!(pool.loaded.iter().all(|m| m.id != MODEL));
    assert!(!pool.available.iter().find(|m| m.id == MODEL).unwrap().loaded);

    let missing = invoke::<ModelPool>(&w, "preload_model", json!({ "id": "nope" }));
    assert_eq!(missing.unwrap_err(), CommandError::ModelNotFound { model: "nope".into() });
    assert_eq!(invalid_field(invoke::<ModelPool>(&w, "set_pinned", json!({ "id": MODEL, "pinned": true }))), "id");

    let limits = PoolSettings {
        max_loaded_models: 2,
        memory_budget_gb: Some(1.5),
        idle_ttl_seconds: Some(600),
        preload: vec![],
        drafts: BTreeMap::new(),
    };
    assert_eq!(invoke::<PoolSettings>(&w, "set_pool_settings", json!({ "pool": limits })).unwrap(), limits);
    let zero = json!({ "pool": { "max_loaded_models": 0, "memory_budget_gb": null, "idle_ttl_seconds": null } });
    assert_eq!(invalid_field(invoke::<PoolSettings>(&w, "set_pool_settings", zero)), "max_loaded_models");
    let huge = json!({ "pool": { "max_loaded_models": 2, "memory_budget_gb": 1e9, "idle_ttl_seconds": null } });
    assert_eq!(invalid_field(invoke::<PoolSettings>(&w, "set_pool_settings", huge)), "memory_budget_gb");
    let ttl = json!({ "pool": { "max_loaded_models": 2, "memory_budget_gb": null, "idle_ttl_seconds": 1 } });
    assert_eq!(invalid_field(invoke::<PoolSettings>(&w, "set_pool_settings", ttl)), "idle_ttl_seconds");
    assert_eq!(invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().pool, limits);

    // Start-up preloads: only registered models, each once; preload_startup loads and pins them.
    let unknown = json!({ "pool": { "max_loaded_models": 2, "memory_budget_gb": null, "idle_ttl_seconds": null,
        "preload": ["nope"] } });
    let err = invoke::<PoolSettings>(&w, "set_pool_settings", unknown).unwrap_err();
    assert_eq!(err, CommandError::ModelNotFound { model: "nope".into() });
    let twice = json!({ "pool": { "max_loaded_models": 2, "memory_budget_gb": null, "idle_ttl_seconds": null,
        "preload": [MODEL, MODEL] } });
    assert_eq!(invalid_field(invoke::<PoolSettings>(&w, "set_pool_settings", twice)), "preload");
    let with_preload = PoolSettings { preload: vec![MODEL.to_string()], ..limits.clone() };
    invoke::<PoolSettings>(&w, "set_pool_settings", json!({ "pool": with_preload })).unwrap();
    let failed = tauri::async_runtime::block_on(controller().preload_startup());
    assert!(failed.is_empty(), "{failed:?}");
    let pool: ModelPool = invoke(&w, "model_pool", json!({})).unwrap();
    assert!(pool.loaded.iter().any(|m| m.id == MODEL && m.pinned), "{pool:?}");
    invoke::<ModelPool>(&w, "unload_model", json!({ "id": MODEL })).unwrap();
    invoke::<PoolSettings>(&w, "set_pool_settings", json!({ "pool": limits })).unwrap();
}

#[test]
fn a_draft_per_model_is_validated_saved_and_served() {
    let _serial = serial();
    let (_app, w) = app();
    let with_drafts = |pairs: &[(&str, &str)]| PoolSettings {
        drafts: pairs.iter().map(|(m, d)| (m.to_string(), d.to_string())).collect(),
        ..invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().pool
    };
    let before = invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().pool;
    // Settings saved before drafts existed still load.
    let old: PoolSettings =
        serde_json::from_value(json!({ "max_loaded_models": 4, "memory_budget_gb": null, "idle_ttl_seconds": null }))
            .unwrap();
    assert!(old.drafts.is_empty() && old.preload.is_empty());

    // Refused: a model as its own draft, an unknown model or draft; nothing saved.
    let own =
        invoke::<PoolSettings>(&w, "set_pool_settings", json!({ "pool": with_drafts(&[(CHAT_MODEL, CHAT_MODEL)]) }));
    assert!(
        matches!(&own, Err(CommandError::Invalid { field, message }) if field == "drafts" && message.contains("own draft")),
        "{own:?}"
    );
    for pairs in [[(CHAT_MODEL, "nope")], [("nope", DRAFT_MODEL)]] {
        let unknown = invoke::<PoolSettings>(&w, "set_pool_settings", json!({ "pool": with_drafts(&pairs) }));
        assert_eq!(unknown.unwrap_err(), CommandError::ModelNotFound { model: "nope".into() });
    }
    assert_eq!(invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().pool, before, "nothing saved");

    // Set while the server runs: saved, and the running listener serves with it (no restart).
    let status: ServerStatus = invoke(&w, "start_server", json!({})).unwrap();
    assert!(status.running, "{status:?}");
    let ctl = controller();
    assert!(tauri::async_runtime::block_on(ctl.served_settings()).unwrap().draft_models.is_empty());
    let drafted = with_drafts(&[(CHAT_MODEL, DRAFT_MODEL)]);
    assert_eq!(invoke::<PoolSettings>(&w, "set_pool_settings", json!({ "pool": drafted })).unwrap(), drafted);
    assert_eq!(invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().pool, drafted);
    let stored: Option<PoolSettings> = tauri::async_runtime::block_on(ctl.store().setting("pool")).unwrap();
    assert_eq!(stored.as_ref(), Some(&drafted), "saved in the store");
    let served = tauri::async_runtime::block_on(ctl.served_settings()).expect("the listener is still up");
    assert_eq!(served.draft_models, drafted.drafts);

    // A request for the model without a `draft_model` of its own loads the draft.
    let now: ServerStatus = invoke(&w, "server_status", json!({})).unwrap();
    assert_eq!(now.url, status.url, "the listener was not restarted");
    let url = now.url.expect("serving");
    let body = json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4});
    let r = http().post(format!("{url}/v1/chat/completions")).json(&body).send().unwrap();
    assert_eq!(r.status(), 200);
    let pool: ModelPool = invoke(&w, "model_pool", json!({})).unwrap();
    assert!(pool.loaded.iter().any(|m| m.id == DRAFT_MODEL), "the configured draft was loaded: {pool:?}");

    // Removing it: saved, served, and the other settings untouched.
    invoke::<ModelPool>(&w, "unload_model", json!({ "id": DRAFT_MODEL })).unwrap();
    assert_eq!(invoke::<PoolSettings>(&w, "set_pool_settings", json!({ "pool": before })).unwrap(), before);
    assert!(tauri::async_runtime::block_on(ctl.served_settings()).unwrap().draft_models.is_empty());
    let stopped: ServerStatus = invoke(&w, "stop_server", json!({})).unwrap();
    assert!(!stopped.running);
}

/// An OpenAI-style upstream that answers every request with `200 {"data": []}`.
fn models_upstream() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let body = r#"{"object":"list","data":[]}"#;
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    url
}

#[test]
fn provider_and_routing_rule_commands() {
    use mlx_manager_core::{ProviderTestResult, ProviderView, RouteTest, RoutingRule};
    let (_app, w) = app();
    let provider = |name: &str, kind: &str, url: &str, key: Option<&str>| json!({ "originalName": null, "input": { "name": name, "kind": kind, "base_url": url, "api_key": key } });
    // Typed errors name the field.
    let r = invoke::<Vec<ProviderView>>(
        &w,
        "save_provider",
        provider("cmd-up", "openai_compatible", "127.0.0.1:1/v1", None),
    );
    assert_eq!(invalid_field(r), "base_url");
    let r = invoke::<Vec<ProviderView>>(&w, "save_provider", provider("cmd-oa", "openai", "", None));
    assert_eq!(invalid_field(r), "api_key");
    let r =
        invoke::<Vec<ProviderView>>(&w, "save_provider", provider("local", "openai_compatible", "http://h/v1", None));
    assert_eq!(invalid_field(r), "name");

    let upstream = models_upstream();
    let key = "sk-commands-test-key-5678";
    let list: Vec<ProviderView> =
        invoke(&w, "save_provider", provider("cmd-up", "openai_compatible", &upstream, Some(key))).unwrap();
    let view = list.iter().find(|p| p.config.name == "cmd-up").unwrap();
    assert_eq!(view.api_key_hint.as_deref(), Some("…5678"));
    assert!(!serde_json::to_string(&list).unwrap().contains(key), "the key never comes back");
    let dup =
        invoke::<Vec<ProviderView>>(&w, "save_provider", provider("cmd-up", "openai_compatible", &upstream, None));
    assert!(matches!(dup, Err(CommandError::Conflict { .. })), "{dup:?}");
    let test: ProviderTestResult = invoke(&w, "test_provider", json!({ "name": "cmd-up" })).unwrap();
    assert!(test.ok && test.status == Some(200), "{test:?}");
    let missing = invoke::<ProviderTestResult>(&w, "test_provider", json!({ "name": "cmd-none" }));
    assert!(matches!(missing, Err(CommandError::NotFound { .. })), "{missing:?}");

    let rule = |pattern: &str, match_type: &str, backend: &str| json!({ "id": null, "input": { "pattern": pattern, "match_type": match_type, "backend": backend, "priority": 0 } });
    assert_eq!(invalid_field(invoke::<Vec<RoutingRule>>(&w, "save_rule", rule("cmd-(", "regex", "cmd-up"))), "pattern");
    assert_eq!(
        invalid_field(invoke::<Vec<RoutingRule>>(&w, "save_rule", rule("cmd-", "prefix", "nowhere"))),
        "backend"
    );
    let rules: Vec<RoutingRule> = invoke(&w, "save_rule", rule("cmd-routed", "exact", "cmd-up")).unwrap();
    let first = rules.iter().find(|r| r.rule.pattern == "cmd-routed").unwrap().id;
    let rules: Vec<RoutingRule> = invoke(&w, "save_rule", rule("cmd-", "prefix", "local")).unwrap();
    let second = rules.iter().find(|r| r.rule.pattern == "cmd-").unwrap().id;
    let route: RouteTest = invoke(&w, "test_route", json!({ "model": "cmd-routed" })).unwrap();
    assert_eq!((route.backend.as_str(), route.rule_id), ("cmd-up", Some(first)));
    // Reordering puts the prefix rule first: now it wins.
    let ids: Vec<u32> = rules.iter().map(|r| r.id).filter(|&id| id != second).collect();
    let order: Vec<u32> = std::iter::once(second).chain(ids).collect();
    let reordered: Vec<RoutingRule> = invoke(&w, "reorder_rules", json!({ "ids": order })).unwrap();
    assert_eq!(reordered[0].id, second);
    let route: RouteTest = invoke(&w, "test_route", json!({ "model": "cmd-routed" })).unwrap();
    assert_eq!((route.backend.as_str(), route.rule_id), ("local", Some(second)));
    assert_eq!(invalid_field(invoke::<RouteTest>(&w, "test_route", json!({ "model": " " }))), "model");

    let in_use = invoke::<Vec<ProviderView>>(&w, "delete_provider", json!({ "name": "cmd-up" }));
    assert!(matches!(in_use, Err(CommandError::Conflict { .. })), "{in_use:?}");
    invoke::<Vec<RoutingRule>>(&w, "delete_rule", json!({ "id": first })).unwrap();
    invoke::<Vec<RoutingRule>>(&w, "delete_rule", json!({ "id": second })).unwrap();
    let gone = invoke::<Vec<RoutingRule>>(&w, "delete_rule", json!({ "id": second }));
    assert!(matches!(gone, Err(CommandError::NotFound { .. })), "{gone:?}");
    let list: Vec<ProviderView> = invoke(&w, "delete_provider", json!({ "name": "cmd-up" })).unwrap();
    assert!(list.iter().all(|p| p.config.name != "cmd-up"));
}

#[test]
fn desktop_settings_are_saved_only_when_the_os_takes_them_and_the_tiny_model_joins_the_pool() {
    let (_app, w) = app();
    let info: DesktopInfo = invoke(&w, "desktop_info", json!({})).unwrap();
    assert_eq!((info.os.as_str(), info.dock_icon_applies, info.offers_tiny_model), ("linux", false, true));

    let on = DesktopSettings { launch_at_login: true, show_dock_icon: false };
    let refused = invoke::<DesktopSettings>(&w, "set_desktop_settings", json!({ "desktop": on }));
    assert!(
        matches!(&refused, Err(CommandError::Desktop { message }) if message.contains("launch at login")),
        "{refused:?}"
    );
    let settings: AppSettings = invoke(&w, "get_settings", json!({})).unwrap();
    assert_eq!(settings.desktop, DesktopSettings::default(), "nothing saved when the OS refuses");

    // The Dock icon asks nothing of the OS on Linux: stored as it is.
    let dock = DesktopSettings { launch_at_login: false, show_dock_icon: true };
    let saved: DesktopSettings = invoke(&w, "set_desktop_settings", json!({ "desktop": dock })).unwrap();
    assert_eq!(saved, dock);
    assert_eq!(invoke::<AppSettings>(&w, "get_settings", json!({})).unwrap().desktop, dock);
    let off = DesktopSettings::default();
    assert_eq!(invoke::<DesktopSettings>(&w, "set_desktop_settings", json!({ "desktop": off })).unwrap(), off);

    // The first run's tiny model: written once into the data dir, in the pool at once.
    let pool: ModelPool = invoke(&w, "install_tiny_model", json!({})).unwrap();
    assert!(pool.available.iter().any(|m| m.id == "tiny-llama"), "{:?}", pool.available);
    let again: ModelPool = invoke(&w, "install_tiny_model", json!({})).unwrap();
    assert_eq!(again.available.iter().filter(|m| m.id == "tiny-llama").count(), 1);
    // (Loading it would race the pool test's limits; the end-to-end test sends it a request.)
}
