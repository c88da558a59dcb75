//! The Models section's commands through Tauri's mock runtime (JSON in, JSON out) over a real
//! controller whose model library talks to the fake Hub (crates/test-hub) on 127.0.0.1: search,
//! download with progress changes, pause and resume, the installed list, the downloaded model
//! in the pool at once, delete refused while loaded unless forced, and the launch restart. The
//! library test is alone in its binary: the library reads its Hub and cache from the
//! environment, which is set once, before the controller opens.

mod support;

use std::time::Duration;

use mlx_manager_app::controller::Change;
use mlx_manager_app::library::{Download, DownloadPhase, HubModel, InstalledModel};
use mlx_manager_app::models::ModelPool;
use mlx_manager_app::{CommandError, Controller, ControllerOptions};
use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_test_hub::FakeHub;
use serde_json::{json, Value};
use support::invoke;
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tokio::sync::broadcast;

const REPO: &str = "tiny-org/tiny-llama";
const SLOW: &str = "tiny-org/tiny-qwen";
const LATER: &str = "tiny-org/tiny-later";
const ELSEWHERE: &str = "tiny-org/tiny-elsewhere";
const WEIGHTS: &str = "model.safetensors";

/// Waits for a [`Change::Download`] of `id` that satisfies `done`; returns every one seen.
fn changes_until(
    changes: &mut broadcast::Receiver<Change>,
    id: &str,
    done: impl Fn(&Download) -> bool,
) -> Vec<Download> {
    tauri::async_runtime::block_on(async {
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match changes.recv().await {
                    Ok(Change::Download(d)) if d.id == id => {
                        let stop = done(&d);
                        seen.push(d);
                        if stop {
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => panic!("changes closed"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no matching progress for {id}; saw {seen:?}"));
        seen
    })
}

#[test]
fn the_tray_line_says_how_far_an_unfinished_download_is() {
    let d = Download {
        id: "dl_000000000001".into(),
        repo: "org/model".into(),
        revision: "main".into(),
        state: DownloadPhase::Running,
        bytes_done: 450,
        bytes_total: 1000,
        bytes_per_second: 12_000_000.0,
        eta_seconds: Some(1.0),
        files_done: 1,
        files_total: 3,
        path: None,
        error: None,
    };
    assert_eq!(d.tray_line().as_deref(), Some("Downloading org/model — 45%, 12 MB/s"));
    let paused = Download { state: DownloadPhase::Paused, bytes_per_second: 0.0, ..d.clone() };
    assert_eq!(paused.tray_line().as_deref(), Some("Paused org/model — 45%"));
    assert_eq!(Download { state: DownloadPhase::Completed, ..d }.tray_line(), None);
}

#[test]
fn search_download_pause_resume_and_delete_through_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let hub = FakeHub::start();
    for (repo, family) in [
        (REPO, TinyFamily::Llama),
        (SLOW, TinyFamily::Qwen2),
        (LATER, TinyFamily::Llama),
        (ELSEWHERE, TinyFamily::Llama),
    ] {
        let folder = dir.path().join("published").join(repo);
        write_tiny_model(&folder, &TinySpec::new(family)).unwrap();
        hub.add_repo(repo, &folder);
    }
    // Set before anything reads the environment (this binary's only test).
    std::env::set_var("HOME", dir.path().join("home"));
    std::env::set_var("HF_HUB_CACHE", dir.path().join("hub"));
    std::env::set_var("HF_ENDPOINT", hub.url());
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::remove_var("HF_TOKEN");

    let options = ControllerOptions {
        data_dir: dir.path().join("data"),
        models: vec![],
        scan_hf_cache: false,
        port_override: Some(0),
        key_storage: mlx_manager_providers::SecretMode::File,
    };
    let ctl = tauri::async_runtime::block_on(Controller::open(options.clone())).unwrap();
    let saved = |ctl: &Controller| -> Value {
        tauri::async_runtime::block_on(ctl.store().setting::<Value>("library_downloads")).unwrap().unwrap_or(json!([]))
    };
    let app = mock_builder()
        .invoke_handler(mlx_manager_app::specta_builder::<MockRuntime>().invoke_handler())
        .manage(ctl.clone())
        .build(mock_context(noop_assets()))
        .unwrap();
    let w = tauri::WebviewWindowBuilder::new(&app, "settings", Default::default()).build().unwrap();

    // Search: each result with its size and whether this engine runs it.
    let results: Vec<HubModel> =
        invoke(&w, "search_models", json!({ "text": "tiny", "sort": "downloads", "limit": null })).unwrap();
    let found = results.iter().find(|r| r.id == REPO).unwrap_or_else(|| panic!("{results:?}"));
    assert_eq!(found.model_type.as_deref(), Some("llama"));
    assert_eq!(found.supported, Some(true));
    assert!(found.size_bytes.unwrap() > 0 && !found.installed, "{found:?}");
    let bad = invoke::<Vec<HubModel>>(&w, "search_models", json!({ "text": "", "sort": "recent", "limit": 0 }));
    assert!(matches!(bad, Err(CommandError::Invalid { ref field, .. }) if field == "limit"), "{bad:?}");

    // Download: progress changes end in `completed`, with every byte.
    let mut changes = ctl.changes();
    let started: Download = invoke(&w, "start_download", json!({ "repo": REPO })).unwrap();
    let seen = changes_until(&mut changes, &started.id, |d| d.state == DownloadPhase::Completed);
    let last = seen.last().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(last.files_done, last.files_total);
    assert!(last.path.as_deref().is_some_and(|p| std::path::Path::new(p).join("config.json").exists()), "{last:?}");
    let listed: Vec<Download> = invoke(&w, "list_downloads", json!({})).unwrap();
    assert!(listed.iter().any(|d| d.id == started.id && d.state == DownloadPhase::Completed), "{listed:?}");

    // Pause and resume: the weights stall half-way; pause stops the transfer, resume finishes it.
    hub.stall(SLOW, WEIGHTS, 64);
    let slow: Download = invoke(&w, "start_download", json!({ "repo": SLOW })).unwrap();
    changes_until(&mut changes, &slow.id, |d| d.state == DownloadPhase::Running && d.bytes_done > 0);
    let paused: Download = invoke(&w, "pause_download", json!({ "id": slow.id })).unwrap();
    assert_eq!(paused.state, DownloadPhase::Paused);
    changes_until(&mut changes, &slow.id, |d| d.state == DownloadPhase::Paused);
    assert_eq!(saved(&ctl), json!([{ "repo": SLOW, "revision": "main", "paused": true }]));
    hub.release(SLOW, WEIGHTS);
    let resumed: Download = invoke(&w, "resume_download", json!({ "id": slow.id })).unwrap();
    assert_ne!(resumed.state, DownloadPhase::Paused);
    changes_until(&mut changes, &slow.id, |d| d.state == DownloadPhase::Completed);
    assert_eq!(saved(&ctl), json!([]), "finished downloads are not restarted");
    let unknown = invoke::<Download>(&w, "pause_download", json!({ "id": "dl_000000000000" }));
    assert!(matches!(unknown, Err(CommandError::NotFound { .. })), "{unknown:?}");

    // A download started elsewhere (over /admin/library) is watched once the window lists it.
    hub.stall(ELSEWHERE, WEIGHTS, 64);
    let repo = mlx_manager_library::RepoId::parse(ELSEWHERE).unwrap();
    let elsewhere = tauri::async_runtime::block_on(ctl.library().unwrap().start(&repo, "main")).unwrap();
    let listed: Vec<Download> = invoke(&w, "list_downloads", json!({})).unwrap();
    assert!(listed.iter().any(|d| d.id == elsewhere.id && d.state != DownloadPhase::Completed), "{listed:?}");
    hub.release(ELSEWHERE, WEIGHTS);
    changes_until(&mut changes, &elsewhere.id, |d| d.state == DownloadPhase::Completed);
    let deleted: Value = invoke(&w, "delete_model", json!({ "repo": ELSEWHERE, "force": false })).unwrap();
    assert_eq!(deleted["repo"], ELSEWHERE, "{deleted}");

    // Installed: both, complete and runnable.
    let installed: Vec<InstalledModel> = invoke(&w, "installed_models", json!({})).unwrap();
    let model = installed.iter().find(|m| m.repo == REPO).unwrap_or_else(|| panic!("{installed:?}"));
    assert!(model.complete && model.supported && !model.loaded && model.size_bytes > 0, "{model:?}");
    assert!(installed.iter().any(|m| m.repo == SLOW && m.complete), "{installed:?}");

    // Delete: refused while loaded, forced unloads first; the folder is gone.
    let path = last.path.clone().unwrap();
    let pool: ModelPool = invoke(&w, "model_pool", json!({})).unwrap();
    assert!(pool.available.iter().any(|m| m.id == REPO && m.supported), "downloaded models load at once: {pool:?}");
    let pool: ModelPool = invoke(&w, "preload_model", json!({ "id": REPO })).unwrap();
    assert!(pool.loaded.iter().any(|m| m.id == REPO), "{pool:?}");
    let installed: Vec<InstalledModel> = invoke(&w, "installed_models", json!({})).unwrap();
    assert!(installed.iter().any(|m| m.repo == REPO && m.loaded), "{installed:?}");
    let refused = invoke::<Value>(&w, "delete_model", json!({ "repo": REPO, "force": false }));
    assert!(matches!(refused, Err(CommandError::Conflict { .. })), "{refused:?}");
    let deleted: Value = invoke(&w, "delete_model", json!({ "repo": REPO, "force": true })).unwrap();
    assert_eq!(deleted["unloaded"], true, "{deleted}");
    assert!(deleted["freed_bytes"].as_u64().unwrap() > 0, "{deleted}");
    assert!(!std::path::Path::new(&path).exists());
    let deleted: Value = invoke(&w, "delete_model", json!({ "repo": SLOW, "force": false })).unwrap();
    assert_eq!(deleted["unloaded"], false, "{deleted}");
    let installed: Vec<InstalledModel> = invoke(&w, "installed_models", json!({})).unwrap();
    assert!(installed.is_empty(), "{installed:?}");
    let pool: ModelPool = invoke(&w, "model_pool", json!({})).unwrap();
    assert!(pool.available.is_empty() && pool.loaded.is_empty(), "{pool:?}");
    let gone = invoke::<Value>(&w, "delete_model", json!({ "repo": REPO, "force": false }));
    assert!(matches!(gone, Err(CommandError::NotFound { .. })), "{gone:?}");
    let bad = invoke::<Value>(&w, "delete_model", json!({ "repo": "not a repo", "force": false }));
    assert!(matches!(bad, Err(CommandError::Invalid { .. })), "{bad:?}");

    // Unfinished at quit: restarted on the next launch and finished from the bytes it had.
    hub.stall(LATER, WEIGHTS, 64);
    let later: Download = invoke(&w, "start_download", json!({ "repo": LATER })).unwrap();
    changes_until(&mut changes, &later.id, |d| d.state == DownloadPhase::Running && d.bytes_done > 0);
    assert_eq!(saved(&ctl), json!([{ "repo": LATER, "revision": "main", "paused": false }]));
    tauri::async_runtime::block_on(ctl.shutdown());
    drop((w, app, ctl, changes));
    hub.release(LATER, WEIGHTS);
    let ctl = tauri::async_runtime::block_on(Controller::open(options)).unwrap();
    let mut changes = ctl.changes();
    let failed = tauri::async_runtime::block_on(ctl.restart_saved_downloads());
    assert!(failed.is_empty(), "{failed:?}");
    let restarted = ctl.library().unwrap().downloads();
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    assert_eq!(restarted[0].repo.to_string(), LATER);
    // The old controller's transfer may still hold the blob's lock for a moment (in the app the
    // old process is gone): a busy blob fails the download, and Resume goes on.
    let id = restarted[0].id.clone();
    for attempt in 0.. {
        let seen =
            changes_until(&mut changes, &id, |d| matches!(d.state, DownloadPhase::Completed | DownloadPhase::Failed));
        if seen.last().unwrap().state == DownloadPhase::Completed {
            break;
        }
        assert!(attempt < 50, "{seen:?}");
        std::thread::sleep(Duration::from_millis(100));
        tauri::async_runtime::block_on(ctl.library().unwrap().resume(&id)).unwrap();
    }
    assert_eq!(saved(&ctl), json!([]));
    tauri::async_runtime::block_on(ctl.shutdown());
}
