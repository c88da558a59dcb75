//! Turns the controller's, engine's and store's change channels into window events and tray
//! updates, so the UI and the tray react to changes instead of polling.

use std::time::Duration;

use tauri::{AppHandle, Runtime};
use tauri_specta::Event;
use tokio::sync::broadcast::error::RecvError;

use crate::controller::{Change, Controller};
use crate::events::*;

/// Starts the forwarding tasks (they end with the app).
pub(crate) fn forward<R: Runtime>(app: AppHandle<R>, ctl: Controller) {
    let (a, c) = (app.clone(), ctl.clone());
    tauri::async_runtime::spawn(async move {
        let mut status = c.status_updates();
        while status.changed().await.is_ok() {
            let now = status.borrow_and_update().clone();
            let _ = ServerStatusChanged(now).emit(&a);
            crate::tray::refresh(&a, &c).await;
        }
    });
    let (a, c) = (app.clone(), ctl.clone());
    tauri::async_runtime::spawn(async move {
        let mut pool = c.engine().pool_changes();
        while pool.changed().await.is_ok() {
            pool.borrow_and_update();
            if let Ok(now) = c.model_pool().await {
                let _ = ModelPoolChanged(now).emit(&a);
            }
            crate::tray::refresh(&a, &c).await;
        }
    });
    let (a, c) = (app.clone(), ctl.clone());
    tauri::async_runtime::spawn(async move {
        let mut changes = c.changes();
        // The tray follows downloads on each change of state, and at most every 2 s in between.
        let mut tray_at = tokio::time::Instant::now();
        let mut states = std::collections::HashMap::new();
        loop {
            match changes.recv().await {
                Ok(Change::Settings(s)) => {
                    let _ = SettingsChanged(s).emit(&a);
                }
                Ok(Change::ExportProgress { path, rows }) => {
                    let _ = ExportProgress { path, rows }.emit(&a);
                }
                Ok(Change::Download(download)) => {
                    let moved = states.insert(download.id.clone(), download.state) != Some(download.state);
                    let completed = moved && download.state == crate::library::DownloadPhase::Completed;
                    let _ = DownloadProgress(download).emit(&a);
                    if completed {
                        // The model can be loaded now: the pool lists it.
                        if let Ok(pool) = c.model_pool().await {
                            let _ = ModelPoolChanged(pool).emit(&a);
                        }
                    }
                    if moved || tray_at.elapsed() >= Duration::from_secs(2) {
                        tray_at = tokio::time::Instant::now();
                        crate::tray::refresh(&a, &c).await;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
    let (a, c) = (app.clone(), ctl.clone());
    tauri::async_runtime::spawn(async move {
        let mut loads = c.engine().load_events();
        loop {
            match loads.recv().await {
                Ok(event) => {
                    let _ = ModelLoading::from(event).emit(&a);
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
    tauri::async_runtime::spawn(async move { audit_feed(app, ctl).await });
}

/// Each new entry as it is committed; a stats notice at most every 500 ms while entries arrive.
async fn audit_feed<R: Runtime>(app: AppHandle<R>, ctl: Controller) {
    let mut feed = ctl.store().subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let (mut fresh, mut lagged) = (0u32, false);
    loop {
        tokio::select! {
            entry = feed.recv() => match entry {
                Ok(entry) => {
                    fresh = fresh.saturating_add(1);
                    let _ = AuditEntryAppended(entry).emit(&app);
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "audit feed lagged");
                    lagged = true;
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if fresh > 0 || lagged {
                    let _ = StatsChanged { new_entries: fresh, lagged }.emit(&app);
                    (fresh, lagged) = (0, false);
                }
            }
        }
    }
}
