//! Starting the app: arguments, logging, plugins, the window's lifecycle and quitting cleanly.

use std::path::PathBuf;

use mlx_manager_providers::SecretMode;
use tauri::{Manager, RunEvent, Runtime, WebviewUrl, WebviewWindowBuilder};

use crate::controller::{Controller, ControllerOptions};

pub(crate) const SETTINGS_WINDOW: &str = "settings";

/// Command-line arguments of `mlx-manager-app`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "mlx-manager-app", version, about = "MLX Manager desktop app (menu bar / tray)")]
pub struct Args {
    /// A model folder to serve (repeatable); its id is the folder's name.
    #[arg(long = "model", short = 'm')]
    pub models: Vec<PathBuf>,
    /// Where the database lives (default: the same as `mlx-manager serve`).
    #[arg(long, env = "MLX_MANAGER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen on this port for this run (the saved port otherwise; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Do not register models found in the Hugging Face cache.
    #[arg(long)]
    pub no_hf_cache: bool,
    /// Start in the tray without opening the settings window (the default on macOS).
    #[arg(long)]
    pub hidden: bool,
    /// Where provider API keys are kept: `auto` (the OS keychain when it answers, else an
    /// encrypted file in the data dir), `keychain` or `file`.
    #[arg(long, default_value = "auto", env = "MLX_MANAGER_KEY_STORAGE", value_parser = parse_key_storage)]
    pub key_storage: SecretMode,
    /// Export request spans to this OpenTelemetry collector (OTLP/HTTP base URL); off by default.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

fn parse_key_storage(s: &str) -> Result<SecretMode, String> {
    SecretMode::parse(s).ok_or_else(|| format!("`{s}`: use auto, keychain or file"))
}

/// Opens (creates) the settings window, or shows and focuses it when it is open. The window is
/// made only when asked for and destroyed when closed, so the tray-only app runs without WebKit's
/// processes (about 400 MB on Linux).
pub(crate) fn show_settings<R: Runtime>(app: &tauri::AppHandle<R>) {
    let window = match app.get_webview_window(SETTINGS_WINDOW) {
        Some(window) => window,
        None => {
            let built = WebviewWindowBuilder::new(app, SETTINGS_WINDOW, WebviewUrl::App("index.html".into()))
                .title("MLX Manager Settings")
                .inner_size(1100.0, 760.0)
                .min_inner_size(760.0, 520.0)
                .build();
            match built {
                Ok(window) => window,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the settings window");
                    return;
                }
            }
        }
    };
    let _ = window.show();
    let _ = window.unminimize();
    let _ = window.set_focus();
}

/// Runs the app until Quit; returns the process exit code.
pub fn run(args: Args) -> i32 {
    let Some(data_dir) = args.data_dir.clone().or_else(mlx_manager_server::paths::default_data_dir) else {
        eprintln!("mlx-manager-app: no data directory: set --data-dir or HOME");
        return 2;
    };
    // Terminal lines, JSON files in the data dir, and OTLP spans when an endpoint is set.
    let _logging = match mlx_manager_telemetry::init(&data_dir, "info", args.otlp_endpoint.as_deref()) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("mlx-manager-app: logging: {e}");
            None
        }
    };
    let options = ControllerOptions {
        data_dir,
        models: args.models.clone(),
        scan_hf_cache: !args.no_hf_cache,
        port_override: args.port,
        key_storage: args.key_storage,
    };
    let hidden = args.hidden || cfg!(target_os = "macos");
    let builder = crate::specta_builder::<tauri::Wry>();
    let app = tauri::Builder::default()
        // First, so a second launch hands over (the running app shows its window: the way in
        // when the menu-bar item is hidden) and exits before it opens the store or the engine.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| show_settings(app)))
        .plugin(crate::desktop::autostart_plugin())
        .plugin(tauri_plugin_dialog::init())
        .invoke_handler(builder.invoke_handler())
        .setup(move |app| {
            let ctl = tauri::async_runtime::block_on(Controller::open(options))?;
            app.manage(ctl.clone());
            app.manage(crate::desktop::Desktop::new(app.handle().clone()));
            builder.mount_events(app);
            crate::desktop::apply_at_launch(app.handle(), &ctl.settings().desktop);
            if let Err(e) = crate::tray::create(app.handle(), &ctl) {
                tracing::warn!(error = %e, "no tray icon (is a tray host running?)");
            }
            crate::bridge::forward(app.handle().clone(), ctl.clone());
            crate::desktop::quit_on_signals(app.handle(), &ctl);
            let starting = ctl.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = starting.start_server().await {
                    tracing::error!(error = %e, "server not started");
                }
                starting.preload_startup().await;
                starting.restart_saved_downloads().await;
            });
            if !hidden {
                show_settings(app.handle());
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("mlx-manager-app: {e}");
            return 1;
        }
    };
    app.run(move |app, event| match event {
        // Closing the settings window keeps the app (and the server) running in the tray; only
        // Quit (an explicit exit code) ends it. Without a tray there is no way back, so it exits.
        RunEvent::ExitRequested { code: None, api, .. } if app.tray_by_id("mlx-manager").is_some() => {
            api.prevent_exit();
        }
        // macOS does not start a second process when Finder, Spotlight or the Dock opens a
        // running app: it sends it a reopen event instead (the single-instance plugin covers
        // a second process, e.g. `open -n` or the binary run again).
        #[cfg(target_os = "macos")]
        RunEvent::Reopen { .. } => show_settings(app),
        RunEvent::Exit => {
            if let Some(ctl) = app.try_state::<Controller>() {
                tauri::async_runtime::block_on(ctl.shutdown());
            }
        }
        _ => {}
    });
    0
}
