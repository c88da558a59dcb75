//! The menu-bar / tray menu: status line, a line per unfinished download, Start/Stop, loaded
//! models with Unload, Settings, Quit.

use tauri::menu::{Menu, MenuBuilder, MenuEvent, MenuItemBuilder, SubmenuBuilder};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Runtime};

use crate::controller::{Controller, ServerStatus};
use crate::library::Download;
use crate::models::{human_bytes, ModelPool};

const TRAY_ID: &str = "mlx-manager";
const UNLOAD_PREFIX: &str = "unload:";

fn menu<R: Runtime>(
    app: &AppHandle<R>,
    status: &ServerStatus,
    pool: Option<&ModelPool>,
    downloads: &[Download],
) -> tauri::Result<Menu<R>> {
    let line = MenuItemBuilder::with_id("status", status.line()).enabled(false).build(app)?;
    let mut lines = vec![line];
    for (i, text) in downloads.iter().filter_map(Download::tray_line).enumerate() {
        lines.push(MenuItemBuilder::with_id(format!("download:{i}"), text).enabled(false).build(app)?);
    }
    let lines: Vec<&dyn tauri::menu::IsMenuItem<R>> =
        lines.iter().map(|l| l as &dyn tauri::menu::IsMenuItem<R>).collect();
    let start = MenuItemBuilder::with_id("start", "Start Server").enabled(!status.running).build(app)?;
    let stop = MenuItemBuilder::with_id("stop", "Stop Server").enabled(status.running).build(app)?;
    let mut models = SubmenuBuilder::new(app, "Models");
    let loaded = pool.map(|p| p.loaded.as_slice()).unwrap_or_default();
    if loaded.is_empty() {
        models = models.item(&MenuItemBuilder::with_id("no-models", "No models loaded").enabled(false).build(app)?);
    }
    for m in loaded {
        let unload = MenuItemBuilder::with_id(format!("{UNLOAD_PREFIX}{}", m.id), "Unload").build(app)?;
        let label = format!("{} — {}{}", m.id, human_bytes(m.memory_bytes), if m.pinned { " (pinned)" } else { "" });
        models = models.item(&SubmenuBuilder::new(app, label).item(&unload).build()?);
    }
    let settings = MenuItemBuilder::with_id("settings", "Open Settings…").build(app)?;
    let quit = MenuItemBuilder::with_id("quit", "Quit MLX Manager").build(app)?;
    MenuBuilder::new(app)
        .items(&lines)
        .separator()
        .items(&[&start, &stop, &models.build()?])
        .separator()
        .items(&[&settings, &quit])
        .build()
}

/// Creates the tray icon with the current state.
pub(crate) fn create<R: Runtime>(app: &AppHandle<R>, ctl: &Controller) -> tauri::Result<()> {
    let menu = menu(app, &ctl.server_status(), None, &[])?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID).menu(&menu).tooltip("MLX Manager");
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    let ctl = ctl.clone();
    tray.on_menu_event(move |app, event| on_menu(app, &ctl, event)).build(app)?;
    Ok(())
}

/// Rebuilds the menu from the current status and pool.
pub(crate) async fn refresh<R: Runtime>(app: &AppHandle<R>, ctl: &Controller) {
    let pool = ctl.model_pool().await.ok();
    let downloads: Vec<Download> =
        ctl.library().map(|l| l.downloads().into_iter().map(Download::from).collect()).unwrap_or_default();
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return };
    match menu(app, &ctl.server_status(), pool.as_ref(), &downloads) {
        Ok(menu) => {
            let _ = tray.set_menu(Some(menu));
        }
        Err(e) => tracing::warn!(error = %e, "tray menu"),
    }
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, ctl: &Controller, event: MenuEvent) {
    let id = event.id().as_ref().to_string();
    let (app, ctl) = (app.clone(), ctl.clone());
    match id.as_str() {
        "start" => {
            tauri::async_runtime::spawn(async move {
                let _ = ctl.start_server().await;
            });
        }
        "stop" => {
            tauri::async_runtime::spawn(async move {
                ctl.stop_server().await;
            });
        }
        "settings" => crate::shell::show_settings(&app),
        "quit" => {
            tauri::async_runtime::spawn(async move {
                ctl.shutdown().await;
                app.exit(0);
            });
        }
        other => {
            if let Some(model) = other.strip_prefix(UNLOAD_PREFIX) {
                let model = model.to_string();
                tauri::async_runtime::spawn(async move {
                    if let Err(e) = ctl.unload_model(&model).await {
                        tracing::warn!(%model, error = %e, "unload from the tray");
                    }
                });
            }
        }
    }
}
