//! What the command tests share: calling a command through Tauri's mock runtime, JSON in and
//! JSON out, as the window's IPC would.

use mlx_manager_app::CommandError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindow;

/// Invokes `cmd` with `args`; its typed error when it fails.
pub fn invoke<T: DeserializeOwned>(w: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<T, CommandError> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().unwrap(),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    match get_ipc_response(w, request) {
        Ok(body) => Ok(body.deserialize().expect("response shape")),
        Err(error) => {
            Err(serde_json::from_value(error.clone()).unwrap_or_else(|e| panic!("untyped error {error}: {e}")))
        }
    }
}
