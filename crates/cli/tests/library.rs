//! The model library through the real binary, against a fake Hub on 127.0.0.1: `pull`
//! (byte-identical files; kill -9 or Ctrl-C mid-download, then a rerun that fetches no finished
//! byte again), `models`, `rm`, and `serve` downloading a model over its admin API that then
//! answers a chat request and is deleted (refused while loaded unless forced).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_test_hub::FakeHub;
use serde_json::{json, Value};

const REPO: &str = "tiny-org/tiny-llama";
const WEIGHTS: &str = "model.safetensors";

struct Setup {
    hub: FakeHub,
    home: tempfile::TempDir,
    model: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let home = tempfile::tempdir().unwrap();
        let model = home.path().join("source/tiny-llama");
        write_tiny_model(&model, &TinySpec::new(TinyFamily::Llama)).unwrap();
        std::fs::write(model.join("README.md"), "not downloaded").unwrap();
        let hub = FakeHub::start();
        hub.add_repo(REPO, &model);
        Setup { hub, home, model }
    }

    fn cache(&self) -> PathBuf {
        self.home.path().join("hf/hub")
    }

    fn repo_dir(&self) -> PathBuf {
        self.cache().join("models--tiny-org--tiny-llama")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mlx-manager"));
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("HF_HOME", self.home.path().join("hf"))
            .env("HF_ENDPOINT", self.hub.url())
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_TOKEN")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("XDG_CACHE_HOME");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn pull(&self) -> Child {
        self.command(&["pull", REPO]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// The `.incomplete` blob (only the weights can be one here: the other files are small).
    fn partial_weights(&self) -> PathBuf {
        std::fs::read_dir(self.repo_dir().join("blobs"))
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".incomplete"))
            })
            .unwrap_or_else(|| self.repo_dir().join("blobs/none.incomplete"))
    }

    /// Bytes of the files a pull takes (all but the README).
    fn pulled_bytes(&self) -> u64 {
        std::fs::read_dir(&self.model)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name() != "README.md")
            .map(|e| e.metadata().unwrap().len())
            .sum()
    }

    /// Waits until every file but the weights is in `blobs/` and the weights' partial blob
    /// holds `bytes`.
    fn wait_for_partial(&self, bytes: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let others = std::fs::read_dir(&self.model).unwrap().count() - 2; // not README, not the weights
        loop {
            let partial = std::fs::metadata(self.partial_weights()).map(|m| m.len()).unwrap_or(0);
            let blobs = std::fs::read_dir(self.repo_dir().join("blobs"))
                .map(|d| {
                    d.filter_map(|e| e.ok()).filter(|e| !e.path().to_string_lossy().ends_with(".incomplete")).count()
                })
                .unwrap_or(0);
            if partial == bytes && blobs == others {
                return;
            }
            assert!(Instant::now() < deadline, "the pull did not get to {bytes} bytes (at {partial}, {blobs} blobs)");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Transfers of each file: (start, bytes).
    fn transfers(&self) -> BTreeMap<String, Vec<(u64, u64)>> {
        let mut out: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for t in self.hub.transfers() {
            out.entry(t.file).or_default().push((t.start, t.bytes));
        }
        out
    }

    /// The pulled snapshot equals the published files (README aside), byte for byte.
    fn assert_pulled(&self, stdout: &[u8]) {
        let snapshot = self.repo_dir().join("snapshots").join(self.hub.commit(REPO));
        assert_eq!(String::from_utf8_lossy(stdout).trim(), snapshot.to_str().unwrap());
        for entry in std::fs::read_dir(&self.model).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let pulled = snapshot.join(&name);
            if name == "README.md" {
                assert!(!pulled.exists());
            } else {
                assert_eq!(std::fs::read(&pulled).unwrap(), self.hub.file(REPO, &name), "{name}");
            }
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn pull_lists_and_removes_a_model() {
    let s = Setup::new();
    let out = s.run(&["pull", REPO]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.assert_pulled(&out.stdout);
    let log = stderr(&out);
    assert!(log.contains(&format!("pulling {REPO}@main (commit {}", &s.hub.commit(REPO)[..12])), "{log}");
    assert!(log.contains("100%") && log.contains(&format!("pulled {REPO} (")), "{log}");

    // Pulling it again fetches nothing.
    let before = s.hub.transfers().len();
    let out = s.run(&["pull", &format!("{REPO}@main")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.hub.transfers().len(), before);

    let out = s.run(&["models"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.starts_with(REPO)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(" KiB") && row.contains("llama") && row.contains(&s.hub.commit(REPO)[..12]), "{row}");
    let out = s.run(&["models", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["repo"], REPO);
    assert_eq!((list[0]["supported"].as_bool(), list[0]["size_bytes"].as_u64()), (Some(true), Some(s.pulled_bytes())));

    let out = s.run(&["rm", REPO]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with(&format!("deleted {REPO} (freed ")) && said.trim_end().ends_with(" KiB)"), "{said}");
    assert!(!s.repo_dir().exists());
    let out = s.run(&["rm", REPO]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not in the Hugging Face cache"), "{}", stderr(&out));
    let out = s.run(&["pull", "tiny-org/missing"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("was not found on the Hub"), "{}", stderr(&out));
}

#[test]
fn a_pull_killed_mid_download_resumes_without_fetching_a_finished_byte_again() {
    let s = Setup::new();
    let size = s.hub.file(REPO, WEIGHTS).len() as u64;
    let at = 200_000;
    s.hub.stall(REPO, WEIGHTS, at);
    let mut child = s.pull();
    s.wait_for_partial(at);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(!s.repo_dir().join("snapshots").exists(), "nothing is linked before every file is verified");
    let first = s.transfers();
    assert_eq!(first[WEIGHTS], [(0, at)]);

    s.hub.release(REPO, WEIGHTS);
    s.hub.reset_log();
    let out = s.run(&["pull", REPO]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.assert_pulled(&out.stdout);
    // The rerun fetched only the rest of the weights: every other file was already complete.
    let second = s.transfers();
    assert_eq!(second.keys().collect::<Vec<_>>(), [WEIGHTS]);
    assert_eq!(second[WEIGHTS], [(at, size - at)]);
}

#[test]
fn ctrl_c_leaves_a_partial_that_the_next_pull_resumes() {
    let s = Setup::new();
    let size = s.hub.file(REPO, WEIGHTS).len() as u64;
    let at = 300_000;
    s.hub.stall(REPO, WEIGHTS, at);
    let child = s.pull();
    s.wait_for_partial(at);
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("run the same command again to resume"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(s.partial_weights()).unwrap().len(), at, "the partial blob stays");
    let out = s.run(&["models"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("pull it again to resume"), "{:?}", out);

    s.hub.release(REPO, WEIGHTS);
    let out = s.run(&["pull", REPO]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.assert_pulled(&out.stdout);
    assert_eq!(s.transfers()[WEIGHTS], [(0, at), (at, size - at)]);
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(s: &Setup) -> Server {
    let mut child = s
        .command(&["serve", "--port", "0", "--data-dir"])
        .arg(s.home.path().join("data"))
        .args(["--key-storage", "file"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected {line:?}")).to_string();
    Server { child, url }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_downloads_a_model_that_then_answers_and_is_deleted() {
    let s = Setup::new();
    let server = serve(&s);
    let client = reqwest::Client::new();
    let started = client
        .post(format!("{}/admin/library/downloads", server.url))
        .json(&json!({"repo": REPO}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.unwrap();
    let id = started["id"].as_str().unwrap();

    // Follow the progress stream to its end.
    let response = client.get(format!("{}/admin/library/downloads/{id}/progress", server.url)).send().await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(60), response.text()).await.unwrap().unwrap();
    let last: Value = serde_json::from_str(body.lines().rev().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(last["state"], "completed", "{body}");

    // No restart: the model answers under its repo id.
    let chat = json!({"model": REPO, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4});
    let answer = client.post(format!("{}/v1/chat/completions", server.url)).json(&chat).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["model"], REPO);
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    assert!(!answer["choices"][0]["message"]["content"].as_str().unwrap().is_empty());

    let url = format!("{}/admin/library/models/{REPO}", server.url);
    let refused = client.delete(&url).send().await.unwrap();
    assert_eq!(refused.status(), 409);
    assert!(s.repo_dir().exists());
    let deleted: Value = client.delete(format!("{url}?force=true")).send().await.unwrap().json().await.unwrap();
    assert_eq!(deleted["unloaded"], true);
    assert!(deleted["freed_bytes"].as_u64().unwrap() > 553_832);
    assert!(!s.repo_dir().exists(), "delete frees the space");
    let gone = client.post(format!("{}/v1/chat/completions", server.url)).json(&chat).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

/// The fake Hub is reachable only through HF_ENDPOINT: nothing here may go to the real one.
#[test]
fn offline_mode_refuses_to_pull() {
    let s = Setup::new();
    let out = s.command(&["pull", REPO]).env("HF_HUB_OFFLINE", "1").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HF_HUB_OFFLINE is set"), "{}", stderr(&out));
    assert!(s.hub.requests().is_empty());
    assert!(Path::new(&s.cache()).read_dir().is_err(), "nothing written");
}
