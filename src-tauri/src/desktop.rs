//! How the app sits in the desktop: launch at login (Tauri's autostart plugin, driven from Rust
//! only), the Dock icon (macOS activation policy), and quitting with a drain, from the tray or on
//! SIGTERM/SIGINT, the way `mlx-manager serve` shuts down.

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, Runtime, State};

use crate::controller::Controller;
use crate::error::CommandError;
use crate::settings::DesktopSettings;

/// What the window needs to know about the desktop it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub struct DesktopInfo {
    /// `macos`, `linux`, … (Rust's `std::env::consts::OS`).
    pub os: String,
    /// Whether "Show Dock icon" does anything here (macOS only).
    pub dock_icon_applies: bool,
    /// Whether the first-run view offers the tiny test model (Linux, where MLX runs on the CPU
    /// and few people have MLX models; on a Mac the model library is the way).
    pub offers_tiny_model: bool,
}

impl DesktopInfo {
    /// This machine.
    pub fn current() -> DesktopInfo {
        let os = std::env::consts::OS;
        DesktopInfo { os: os.to_string(), dock_icon_applies: os == "macos", offers_tiny_model: os == "linux" }
    }
}

/// The desktop this app runs on.
#[tauri::command]
#[specta::specta]
pub async fn desktop_info() -> Result<DesktopInfo, CommandError> {
    Ok(DesktopInfo::current())
}

/// The OS side of the desktop settings, behind a trait so the commands need no `Runtime`
/// parameter (one specta builder for the app, the mock-runtime tests and the bindings).
trait DesktopOs: Send + Sync {
    fn set_launch_at_login(&self, on: bool) -> Result<(), CommandError>;
    fn set_dock_icon(&self, shown: bool);
}

impl<R: Runtime> DesktopOs for AppHandle<R> {
    fn set_launch_at_login(&self, on: bool) -> Result<(), CommandError> {
        set_launch_at_login(self, on)
    }

    fn set_dock_icon(&self, shown: bool) {
        set_dock_icon(self, shown)
    }
}

/// Managed state: the handle the desktop commands change the OS through.
pub struct Desktop(Box<dyn DesktopOs>);

impl Desktop {
    /// For the app (or a test app) `app`.
    pub fn new<R: Runtime>(app: AppHandle<R>) -> Desktop {
        Desktop(Box::new(app))
    }
}

/// Applies launch at login and the Dock icon to the OS, then saves them. When the OS refuses,
/// nothing is saved (a typed `desktop` error says why).
#[tauri::command]
#[specta::specta]
pub async fn set_desktop_settings(
    os: State<'_, Desktop>,
    ctl: State<'_, Controller>,
    desktop: DesktopSettings,
) -> Result<DesktopSettings, CommandError> {
    let previous = ctl.settings().desktop;
    let login_changed = desktop.launch_at_login != previous.launch_at_login;
    if login_changed {
        os.0.set_launch_at_login(desktop.launch_at_login)?;
    }
    if desktop.show_dock_icon != previous.show_dock_icon {
        os.0.set_dock_icon(desktop.show_dock_icon);
    }
    match ctl.set_desktop_settings(desktop).await {
        Ok(saved) => Ok(saved),
        Err(e) => {
            // Keep the OS in step with what is saved.
            if login_changed {
                let _ = os.0.set_launch_at_login(previous.launch_at_login);
            }
            os.0.set_dock_icon(previous.show_dock_icon);
            Err(e)
        }
    }
}

/// On launch: the saved Dock icon choice, and the login item written again when it is on (so it
/// follows the app when it moved or was updated). An off setting leaves the OS alone, so a
/// development build with its own data dir never removes the installed app's login item.
pub(crate) fn apply_at_launch<R: Runtime>(app: &AppHandle<R>, desktop: &DesktopSettings) {
    set_dock_icon(app, desktop.show_dock_icon);
    if desktop.launch_at_login {
        if let Err(e) = set_launch_at_login(app, true) {
            tracing::warn!(error = %e, "launch at login");
        }
    }
}

fn set_launch_at_login<R: Runtime>(app: &AppHandle<R>, on: bool) -> Result<(), CommandError> {
    let refused = |message: String| CommandError::Desktop { message };
    let Some(login) = app.try_state::<tauri_plugin_autostart::AutoLaunchManager>() else {
        return Err(refused("launch at login is not available in this build".into()));
    };
    let result = if on { login.enable() } else { login.disable() };
    result.map_err(|e| refused(format!("cannot change launch at login: {e}")))
}

#[cfg_attr(not(target_os = "macos"), allow(unused_variables))]
fn set_dock_icon<R: Runtime>(app: &AppHandle<R>, shown: bool) {
    #[cfg(target_os = "macos")]
    {
        let policy = if shown { tauri::ActivationPolicy::Regular } else { tauri::ActivationPolicy::Accessory };
        if let Err(e) = app.set_activation_policy(policy) {
            tracing::warn!(error = %e, "activation policy");
        }
    }
}

/// The plugin that keeps the login item: started hidden, in the menu bar / tray.
pub(crate) fn autostart_plugin<R: Runtime>() -> tauri::plugin::TauriPlugin<R> {
    tauri_plugin_autostart::Builder::new().arg("--hidden").build()
}

/// Quits as `mlx-manager serve` does on SIGTERM: the listener stops accepting (new requests get
/// a 503), in-flight requests finish (up to 30 s, the same `mlx_manager_server::serve` drain),
/// the engine stops, and the app exits. The window is hidden at once, so the drain happens out of
/// sight.
pub(crate) fn quit<R: Runtime>(app: &AppHandle<R>, ctl: &Controller) {
    if let Some(window) = app.get_webview_window(crate::shell::SETTINGS_WINDOW) {
        let _ = window.hide();
    }
    let (app, ctl) = (app.clone(), ctl.clone());
    tauri::async_runtime::spawn(async move {
        tracing::info!("quitting: draining in-flight requests");
        ctl.shutdown().await;
        app.exit(0);
    });
}

/// SIGTERM and SIGINT (logout, `kill`, Ctrl-C in the terminal that started the app) quit the
/// same way as the tray's Quit.
pub(crate) fn quit_on_signals<R: Runtime>(app: &AppHandle<R>, ctl: &Controller) {
    let (app, ctl) = (app.clone(), ctl.clone());
    tauri::async_runtime::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else { return };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        quit(&app, &ctl);
    });
}
