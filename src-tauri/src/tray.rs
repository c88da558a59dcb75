//! The menu-bar / tray menu: status line, a line per unfinished download, Start/Stop, loaded
//! models with Unload, Settings, Quit; and the title (next to the icon) and tooltip, which say
//! whether the server runs and how many models are loaded.

use tauri::menu::{Menu, MenuBuilder, MenuEvent, MenuItemBuilder, SubmenuBuilder};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Runtime};

use crate::controller::{Controller, ServerStatus};
use crate::library::Download;
use crate::models::{human_bytes, LoadedModel, ModelPool};

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
        models = models.item(&SubmenuBuilder::new(app, model_label(m)).item(&unload).build()?);
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

/// A loaded model's entry in the Models submenu: its id, memory, whether it runs from a
/// dequantized copy (which explains memory several times its files; the settings window's Model
/// pool says why) and whether it is pinned — "tiny-q4 — 15 MB · dequantized from 4-bit (pinned)".
pub fn model_label(m: &LoadedModel) -> String {
    let mut label = format!("{} — {}", m.id, human_bytes(m.memory_bytes));
    if let Some(bits) = m.dequantized_from_bits {
        label.push_str(&format!(" · dequantized from {bits}-bit"));
    }
    if m.pinned {
        label.push_str(" (pinned)");
    }
    label
}

/// The title next to the icon (macOS menu bar; the indicator's label on Linux): short, since it
/// takes menu-bar space — "On · 2" while serving with two models loaded, "Off" when stopped.
pub fn title(status: &ServerStatus, loaded: usize) -> String {
    match (status.running, status.error.is_some()) {
        (true, _) => format!("On · {loaded}"),
        (false, false) => "Off".to_string(),
        (false, true) => "Off (error)".to_string(),
    }
}

/// The tooltip (macOS, Windows; Linux indicators have none): the status line and the count.
pub fn tooltip(status: &ServerStatus, loaded: usize) -> String {
    let models = match loaded {
        0 => "no models loaded".to_string(),
        1 => "1 model loaded".to_string(),
        n => format!("{n} models loaded"),
    };
    format!("MLX Manager — {} — {models}", status.line())
}

/// Creates the tray icon with the current state.
pub(crate) fn create<R: Runtime>(app: &AppHandle<R>, ctl: &Controller) -> tauri::Result<()> {
    let status = ctl.server_status();
    let menu = menu(app, &status, None, &[])?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID).menu(&menu).title(title(&status, 0)).tooltip(tooltip(&status, 0));
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    let ctl = ctl.clone();
    tray.on_menu_event(move |app, event| on_menu(app, &ctl, event)).build(app)?;
    Ok(())
}

/// Rebuilds the menu, title and tooltip from the current status and pool.
pub(crate) async fn refresh<R: Runtime>(app: &AppHandle<R>, ctl: &Controller) {
    let pool = ctl.model_pool().await.ok();
    let downloads: Vec<Download> =
        ctl.library().map(|l| l.downloads().into_iter().map(Download::from).collect()).unwrap_or_default();
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return };
    let status = ctl.server_status();
    let loaded = pool.as_ref().map_or(0, |p| p.loaded.len());
    let _ = tray.set_title(Some(title(&status, loaded)));
    let _ = tray.set_tooltip(Some(tooltip(&status, loaded)));
    match menu(app, &status, pool.as_ref(), &downloads) {
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
        "quit" => crate::desktop::quit(&app, &ctl),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(running: bool, error: Option<&str>) -> ServerStatus {
        ServerStatus {
            running,
            url: running.then(|| "http://127.0.0.1:10242".to_string()),
            error: error.map(str::to_string),
        }
    }

    fn loaded(id: &str, memory_bytes: u64, dequantized_from_bits: Option<i32>, pinned: bool) -> LoadedModel {
        LoadedModel {
            id: id.into(),
            model_type: "llama".into(),
            dtype: "float32".into(),
            quantization: Some("4-bit, group 64".into()),
            dequantized_from_bits,
            memory_bytes,
            kv_cache_bytes: 0,
            pinned,
            idle_seconds: 0,
            requests_served: 0,
        }
    }

    #[test]
    fn a_model_entry_says_its_memory_and_whether_it_runs_dequantized_or_pinned() {
        assert_eq!(model_label(&loaded("packed", 2_400_000, None, false)), "packed — 2 MB");
        assert_eq!(model_label(&loaded("copy", 15_360_000, Some(4), false)), "copy — 15 MB · dequantized from 4-bit");
        assert_eq!(
            model_label(&loaded("copy", 1_500_000_000, Some(8), true)),
            "copy — 1.5 GB · dequantized from 8-bit (pinned)"
        );
        assert_eq!(model_label(&loaded("pinned", 2_400_000, None, true)), "pinned — 2 MB (pinned)");
    }

    #[test]
    fn title_and_tooltip_say_the_state_and_the_loaded_count() {
        assert_eq!(title(&status(true, None), 2), "On · 2");
        assert_eq!(title(&status(true, None), 0), "On · 0");
        assert_eq!(title(&status(false, None), 0), "Off");
        assert_eq!(title(&status(false, Some("address in use")), 0), "Off (error)");
        assert_eq!(tooltip(&status(true, None), 1), "MLX Manager — Serving on 127.0.0.1:10242 — 1 model loaded");
        assert_eq!(tooltip(&status(true, None), 3), "MLX Manager — Serving on 127.0.0.1:10242 — 3 models loaded");
        assert_eq!(
            tooltip(&status(false, Some("address in use")), 0),
            "MLX Manager — Stopped: address in use — no models loaded"
        );
    }
}
