//! End-to-end: the real app (this crate's binary, with its embedded UI) in a real WebKitGTK window
//! under Xvfb, driven through tauri-driver and WebKitWebDriver. A real HTTP request to the app's
//! endpoint must appear in the audit table without a reload; a provider and a routing rule added in
//! the window must route the next request; a timeout changed in the window must survive a restart.
//! Launch at login switched on in the window writes the XDG autostart entry and stays on across
//! the restart, where switching it off removes the entry. The restart has no model and starts
//! hidden in the tray: opening the app again (a second launch, handed over on D-Bus) shows the
//! window, which opens on the welcome view and serves the tiny model it offers; SIGTERM then drains
//! a streamed answer before the app exits. The screenshots in docs/screenshots/ are written by
//! this test.
//!
//! Needs what `scripts/setup` installs: Xvfb (`xvfb-run`), `dbus-run-session`, WebKitWebDriver and
//! tauri-driver (in `$MLX_MANAGER_CACHE/tools/bin`, or `TAURI_DRIVER`).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use serde_json::{json, Value};

const MODEL: &str = "tiny-e2e";
/// The model the window downloads from the local Hub.
const DOWNLOADED: &str = "tiny-org/tiny-downloaded";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tauri_driver() -> PathBuf {
    if let Some(p) = std::env::var_os("TAURI_DRIVER") {
        return p.into();
    }
    let cache = std::env::var_os("MLX_MANAGER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlx-manager"));
    let p = cache.join("tools/bin/tauri-driver");
    assert!(p.exists(), "{} is missing: run scripts/setup (it installs tauri-driver)", p.display());
    p
}

/// tauri-driver on an Xvfb display with its own D-Bus session; the whole process group goes on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// `env`: for the app the sessions start (tauri-driver passes its environment on).
    fn start(env: &[(&str, &Path)]) -> Driver {
        for tool in ["xvfb-run", "dbus-run-session", "WebKitWebDriver"] {
            let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
            assert!(found.status.success(), "{tool} is missing: run scripts/setup");
        }
        let port = free_port();
        let native_port = free_port();
        let child = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x900x24", "dbus-run-session", "--"])
            .arg(tauri_driver())
            .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .args(["--native-driver", "/usr/bin/WebKitWebDriver"])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_TOKEN")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start xvfb-run tauri-driver");
        Driver { child, port }
    }

    /// A session running the app with these arguments (tauri-driver launches it).
    async fn session(&self, args: &[String]) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "tauri:options".into(),
            json!({ "application": env!("CARGO_BIN_EXE_mlx-manager-app"), "args": args }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(client) => return client,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for tauri-driver: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("--").arg(format!("-{}", self.child.id())).status();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it gives a value (or fails the test after `secs`).
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The rendered text of the first element matching `css`, if there is one.
async fn text(client: &Client, css: &str) -> Option<String> {
    let found = client
        .execute("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", vec![json!(css)])
        .await
        .ok()?;
    found.as_str().map(str::to_owned)
}

async fn script(client: &Client, js: &str) -> Value {
    client.execute(js, vec![]).await.expect("script")
}

async fn click(client: &Client, css: &str) {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

async fn screenshot(client: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    // The DOM the test waited for can be ahead of the pixels (a section's screenshot once showed
    // the section before it): let the web view paint two frames first.
    client
        .execute_async(
            "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(null)));",
            vec![],
        )
        .await
        .expect("two frames painted");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The app process using `data_dir`, if one is alive (the single-instance lock would stop a
/// second one from opening its own window).
fn app_pid(data_dir: &Path) -> Option<u32> {
    let needle = data_dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|p| {
        let cmdline = String::from_utf8_lossy(&std::fs::read(p.path().join("cmdline")).ok()?).into_owned();
        let app = cmdline.contains(&needle) && !cmdline.contains("tauri-driver") && cmdline.contains("mlx-manager-app");
        app.then(|| p.file_name().to_str()?.parse().ok()).flatten()
    })
}

fn app_running(data_dir: &Path) -> bool {
    app_pid(data_dir).is_some()
}

/// A process's environment (its display, D-Bus session, HOME …).
fn environment(pid: u32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter_map(|kv| String::from_utf8_lossy(kv).split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// Whether the app owns its single-instance name on the session bus at `bus`.
fn owns_instance_name(bus: &str) -> bool {
    let out = Command::new("dbus-send")
        .args(["--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"])
        .args(["org.freedesktop.DBus.NameHasOwner", "string:dev.mlx-manager.app.SingleInstance"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .expect("dbus-send");
    String::from_utf8_lossy(&out.stdout).contains("boolean true")
}

/// The session bus address in a process's environment.
fn session_bus(env: &[(String, String)]) -> String {
    env.iter().find(|(k, _)| k == "DBUS_SESSION_BUS_ADDRESS").map(|(_, v)| v.clone()).expect("a session bus")
}

/// Opens the app again the way a user would (same desktop session, same arguments) while the
/// one using `data_dir` runs: the new process hands over to it on D-Bus and exits at once.
async fn launch_again(data_dir: &Path, args: &[String]) {
    let pid = wait_for("the app to start", 60, || async { app_pid(data_dir) }).await;
    let env = environment(pid);
    let bus = session_bus(&env);
    wait_for("the app to own its D-Bus name", 60, || async { owns_instance_name(&bus).then_some(()) }).await;
    let second = Command::new(env!("CARGO_BIN_EXE_mlx-manager-app"))
        .args(args)
        .env_clear()
        .envs(env)
        .stdout(Stdio::null())
        .spawn()
        .expect("second launch");
    let second = std::sync::Mutex::new(second);
    let status = wait_for("the second launch to hand over and exit", 30, || async {
        second.lock().unwrap().try_wait().unwrap()
    })
    .await;
    assert!(status.success(), "second launch: {status}");
    assert_eq!(app_pid(data_dir), Some(pid), "the first app still runs, alone");
}

/// The XDG autostart entries under `home`.
fn autostart_entries(home: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(home.join(".config/autostart"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "desktop")).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_window_shows_live_requests_and_keeps_timeouts_across_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join(MODEL);
    write_tiny_model(&model, &TinySpec::new(TinyFamily::Llama)).unwrap();
    let data_dir = tmp.path().join("data");
    let common: Vec<String> = vec![
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--port".into(),
        "0".into(),
        "--no-hf-cache".into(),
        // Keys in the encrypted file: the session's Secret Service (if gnome-keyring is
        // activatable) has no unlocked keyring and would ask for one in a prompt.
        "--key-storage".into(),
        "file".into(),
    ];
    let args: Vec<String> = [common.clone(), vec!["--model".into(), model.display().to_string()]].concat();
    // A local Hub speaking the real one's API, with one model to find and download in the window.
    let hub = mlx_manager_test_hub::FakeHub::start();
    let published = tmp.path().join("published");
    write_tiny_model(&published, &TinySpec::new(TinyFamily::Qwen2)).unwrap();
    hub.add_repo(DOWNLOADED, &published);
    let (endpoint, hub_cache) = (PathBuf::from(hub.url()), tmp.path().join("hub-cache"));
    // A home of its own: launch at login writes its entry under $HOME/.config/autostart.
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let driver = Driver::start(&[
        ("HF_ENDPOINT", endpoint.as_path()),
        ("HF_HUB_CACHE", hub_cache.as_path()),
        ("HOME", home.as_path()),
    ]);

    // First run: the window shows where the server listens.
    let client = driver.session(&args).await;
    let status = wait_for("the server to start", 60, || async {
        text(&client, "[data-testid=server-status]").await.filter(|t| t.starts_with("Serving on http://"))
    })
    .await;
    let base = status.trim_start_matches("Serving on ").trim().to_string();
    wait_for("the empty audit table", 30, || async { text(&client, "[data-testid=audit-empty]").await }).await;

    // A real request from another app: it appears in the table (live, no reload).
    let body = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "Hello" }], "max_tokens": 4 });
    let response: Value = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("chat request")
        .error_for_status()
        .expect("chat status")
        .json()
        .await
        .unwrap();
    assert_eq!(response["usage"]["completion_tokens"], 4);
    let row = wait_for("the request's row", 20, || async {
        text(&client, "[data-testid=audit-row]").await.filter(|t| t.contains(MODEL))
    })
    .await;
    assert!(row.contains("/v1/chat/completions") && row.contains("Success"), "row: {row}");
    wait_for("the totals to count it", 10, || async {
        text(&client, "[data-testid=stat-total]").await.filter(|t| t == "1")
    })
    .await;
    // An error is recorded too, with its reason in the detail.
    let missing = json!({ "model": "no-such-model", "messages": [{ "role": "user", "content": "Hi" }] });
    let r = reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&missing).send().await.unwrap();
    assert_eq!(r.status(), 404);
    wait_for("the error row", 20, || async {
        text(&client, "[data-testid=audit-row]").await.filter(|t| t.contains("no-such-model"))
    })
    .await;
    // The totals above the table follow live too (the error counted), without a reload.
    wait_for("the stats to count both requests", 10, || async {
        let total = text(&client, "[data-testid=stat-total]").await?;
        let errors = text(&client, "[data-testid=stat-errors]").await?;
        (total == "2" && errors == "1").then_some(())
    })
    .await;
    screenshot(&client, "audit-logs").await;
    // At the default window size the table fits: no horizontal scrolling, "Tokens" not cut off.
    let widths = script(
        &client,
        "const s = document.querySelector('[data-testid=audit-scroller]'); const d = document.documentElement; \
         return [s.scrollWidth, s.clientWidth, d.scrollWidth, d.clientWidth];",
    )
    .await;
    let w: Vec<u64> = widths.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(w[0] <= w[1] && w[2] <= w[3], "horizontal overflow (table, page): {w:?}");
    click(&client, "[data-testid=audit-row] td:nth-child(2)").await;
    let error = wait_for("the detail", 10, || async { text(&client, "[data-testid=detail-error]").await }).await;
    assert!(error.contains("model_not_found"), "detail: {error}");
    screenshot(&client, "audit-detail").await;

    click(&client, "[data-testid=tab-server]").await;
    wait_for("the server section", 10, || async { text(&client, "[data-testid=server-section-status]").await }).await;
    screenshot(&client, "server").await;
    click(&client, "[data-testid=tab-pool]").await;
    // The tab first shows the pool as of its last event (the load, 0 requests) and fetches the
    // counts on opening: wait for that fetch to land.
    let pool_row = wait_for("the model pool", 10, || async {
        text(&client, &format!("[data-testid=pool-row-{MODEL}]"))
            .await
            .filter(|t| t.contains("Loaded") && t.contains("1 req"))
    })
    .await;
    assert!(pool_row.contains("1 req"), "pool row: {pool_row}");
    screenshot(&client, "model-pool").await;

    // Change the chat timeout in the window and save it.
    click(&client, "[data-testid=tab-timeouts]").await;
    let input = client.wait().for_element(Locator::Css("[data-testid=timeout-chat_seconds-input]")).await.unwrap();
    assert_eq!(input.prop("value").await.unwrap().as_deref(), Some("900"));
    input.clear().await.unwrap();
    input.send_keys("1800").await.unwrap();
    wait_for("the readout to follow", 10, || async {
        text(&client, "[data-testid=timeout-chat_seconds-readout]").await.filter(|t| t == "30 min")
    })
    .await;
    click(&client, "[data-testid=timeouts-save]").await;
    wait_for("the save to be confirmed", 10, || async {
        text(&client, "[data-testid=timeouts-message]").await.filter(|t| t.starts_with("Saved"))
    })
    .await;
    screenshot(&client, "request-timeouts").await;

    // A provider added in the window (this app's own endpoint, as an OpenAI-compatible server) and
    // a rule sending a new model name to it: a request under that name is routed at once.
    click(&client, "[data-testid=tab-providers]").await;
    click(&client, "[data-testid=provider-add]").await;
    let field = |css: &'static str| {
        let client = client.clone();
        async move { client.wait().for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")) }
    };
    field("[data-testid=provider-name]").await.send_keys("this-mac").await.unwrap();
    field("[data-testid=provider-kind]").await.select_by_value("openai_compatible").await.unwrap();
    field("[data-testid=provider-url]").await.send_keys(&format!("{base}/v1")).await.unwrap();
    field("[data-testid=provider-key-input]").await.send_keys("sk-e2e-provider-key-0042").await.unwrap();
    click(&client, "[data-testid=provider-save]").await;
    let key = wait_for("the provider row", 10, || async { text(&client, "[data-testid=provider-key]").await }).await;
    assert_eq!(key, "…0042");
    click(&client, "[data-testid=provider-test]").await;
    let tested = wait_for("the provider test", 20, || async {
        text(&client, "[data-testid=provider-result]").await.filter(|t| t.starts_with("Reachable"))
    })
    .await;
    assert!(tested.contains("HTTP 200"), "{tested}");
    screenshot(&client, "providers").await;

    click(&client, "[data-testid=tab-routing]").await;
    click(&client, "[data-testid=rule-add]").await;
    field("[data-testid=rule-pattern-input]").await.send_keys("routed-model").await.unwrap();
    field("[data-testid=rule-backend]").await.select_by_value("this-mac").await.unwrap();
    field("[data-testid=rule-backend-model]").await.send_keys(MODEL).await.unwrap();
    click(&client, "[data-testid=rule-save]").await;
    wait_for("the rule row", 10, || async {
        text(&client, "[data-testid=rule-pattern]").await.filter(|t| t == "routed-model")
    })
    .await;
    field("[data-testid=route-test-input]").await.send_keys("routed-model").await.unwrap();
    click(&client, "[data-testid=route-test]").await;
    let route = wait_for("the route test", 10, || async {
        text(&client, "[data-testid=route-test-result]").await.filter(|t| !t.is_empty())
    })
    .await;
    assert!(route.contains("this-mac serves it"), "{route}");
    screenshot(&client, "routing-rules").await;
    let routed = json!({ "model": "routed-model", "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 2 });
    let r = reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&routed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-mlx-backend"], "this-mac");

    // The Models section: find a model on the Hub, download it, and it answers at once.
    click(&client, "[data-testid=tab-models]").await;
    field("[data-testid=models-search-input]").await.send_keys("tiny-downloaded").await.unwrap();
    click(&client, "[data-testid=models-search]").await;
    let found = wait_for("the search result", 20, || async {
        text(&client, "[data-testid=model-result]").await.filter(|t| t.contains(DOWNLOADED))
    })
    .await;
    assert!(found.contains("Supported"), "{found}");
    click(&client, "[data-testid=model-download]").await;
    wait_for("the download to complete", 60, || async {
        let done =
            script(&client, "return document.querySelector('[data-testid=download][data-state=completed]') !== null")
                .await;
        done.as_bool().filter(|d| *d)
    })
    .await;
    screenshot(&client, "models").await;
    let body = json!({ "model": DOWNLOADED, "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 3 });
    let r = reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "the downloaded model is served without a restart");

    // Launch at login: the switch writes the XDG autostart entry, starting the app hidden.
    assert!(autostart_entries(&home).is_empty());
    click(&client, "[data-testid=tab-app]").await;
    click(&client, "[data-testid=launch-at-login]").await;
    wait_for("launch at login to be saved", 10, || async {
        text(&client, "[data-testid=desktop-message]").await.filter(|t| t.starts_with("Saved"))
    })
    .await;
    let entries = autostart_entries(&home);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = std::fs::read_to_string(&entries[0]).unwrap();
    let exec = entry.lines().find(|l| l.starts_with("Exec=")).unwrap_or_default().to_string();
    assert!(exec.contains("mlx-manager-app") && exec.ends_with("--hidden"), "{entry}");
    screenshot(&client, "app").await;
    let bus = session_bus(&environment(app_pid(&data_dir).expect("the first app runs")));
    client.close().await.unwrap();
    wait_for("the first app to exit", 20, || async { (!app_running(&data_dir)).then_some(()) }).await;
    // And for the bus to see it gone: a start while the name still has the exited owner would
    // try to hand over to it (a relaunch within milliseconds of quitting; seen under load).
    wait_for("the first app's instance name to be free", 20, || async { (!owns_instance_name(&bus)).then_some(()) })
        .await;

    // Second run on the same data, hidden in the tray (as at login) and with no model: opening
    // the app again shows its window (the session connects once there is one), on the welcome
    // view; the timeout, launch at login and the audit rows are still there.
    let second_args: Vec<String> = [common, vec!["--hidden".into()]].concat();
    let both = async { tokio::join!(driver.session(&second_args), launch_again(&data_dir, &second_args)) };
    let (client, ()) = tokio::time::timeout(Duration::from_secs(90), both)
        .await
        .expect("no window after the second launch (the WebDriver session waits for one)");
    wait_for("the second run's window", 60, || async {
        text(&client, "[data-testid=server-status]").await.filter(|t| t.starts_with("Serving on"))
    })
    .await;
    let welcome =
        wait_for("the welcome view", 10, || async { text(&client, "[data-testid=welcome-no-models]").await }).await;
    assert!(welcome.contains("No model yet"), "{welcome}");
    let url = text(&client, "[data-testid=welcome-url]").await.unwrap();
    let base = text(&client, "[data-testid=server-status]")
        .await
        .unwrap()
        .trim_start_matches("Serving on ")
        .trim()
        .to_string();
    assert_eq!(url, base);
    screenshot(&client, "welcome").await;
    // The tiny model it offers on Linux is served at once (and the welcome note goes).
    click(&client, "[data-testid=welcome-tiny]").await;
    wait_for("the tiny model", 30, || async {
        text(&client, "[data-testid=welcome-message]").await.filter(|t| t.contains("tiny-llama is ready"))
    })
    .await;
    assert!(text(&client, "[data-testid=welcome-no-models]").await.is_none());
    let body = json!({ "model": "tiny-llama", "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 2 });
    let r = reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "the tiny model is served without a restart");

    // Launch at login is still on; switching it off removes the entry.
    click(&client, "[data-testid=tab-app]").await;
    let login = client.wait().for_element(Locator::Css("[data-testid=launch-at-login]")).await.unwrap();
    assert_eq!(login.prop("checked").await.unwrap().as_deref(), Some("true"));
    assert_eq!(autostart_entries(&home).len(), 1);
    login.click().await.unwrap();
    wait_for("the autostart entry to go", 10, || async { autostart_entries(&home).is_empty().then_some(()) }).await;

    // The two first requests, the routed request (recorded by both legs: the front door, and this
    // same app as the provider), the downloaded model's and the tiny model's; the provider test's
    // model listing is a read, not audited.
    click(&client, "[data-testid=tab-audit]").await;
    let rows = wait_for("the persisted rows", 20, || async {
        let n = script(&client, "return document.querySelectorAll('[data-testid=audit-row]').length").await;
        n.as_u64().filter(|n| *n == 6)
    })
    .await;
    assert_eq!(rows, 6);
    click(&client, "[data-testid=tab-timeouts]").await;
    let input = client.wait().for_element(Locator::Css("[data-testid=timeout-chat_seconds-input]")).await.unwrap();
    let value =
        wait_for("the saved timeout", 10, || async { input.prop("value").await.ok().flatten().filter(|v| v != "900") })
            .await;
    assert_eq!(value, "1800");

    // Quitting drains as `serve` does on SIGTERM (the tray's Quit takes the same path): an answer
    // being streamed finishes, a new request meanwhile gets a 503, then the app exits by itself.
    let pid = app_pid(&data_dir).expect("the app runs");
    let long = json!({ "model": "tiny-llama", "messages": [{ "role": "user", "content": "Hi" }],
        "max_tokens": 1500, "temperature": 0, "stream": true });
    let mut stream =
        reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&long).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut streamed = stream.chunk().await.unwrap().expect("a first chunk").to_vec();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let short = json!({ "model": "tiny-llama", "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 1 });
    wait_for("a new request to get 503 while draining", 10, || async {
        let r = reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&short).send().await.ok()?;
        (r.status() == 503).then_some(())
    })
    .await;
    while let Some(chunk) = stream.chunk().await.expect("the stream runs to its end") {
        streamed.extend_from_slice(&chunk);
    }
    let streamed = String::from_utf8_lossy(&streamed);
    assert!(streamed.contains("\"finish_reason\":\"length\"") && streamed.trim_end().ends_with("data: [DONE]"));
    wait_for("the app to exit after the drain", 40, || async { (!app_running(&data_dir)).then_some(()) }).await;
}
