//! The library against a fake Hub on 127.0.0.1 that serves tiny generated models: the cache
//! layout (checked by Python's huggingface_hub too), byte-identical files, resume without
//! fetching a byte twice (pause, cancel, dropped connections), retries, checksums, gated repos,
//! typed errors, search, delete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_library::{
    DownloadOptions, DownloadState, DownloadStatus, FileState, HubConfig, Library, LibraryError, RepoId, RetryPolicy,
    SearchQuery, SearchSort,
};
use mlx_manager_test_hub::FakeHub;
use secrecy::SecretString;

const REPO: &str = "tiny-org/tiny-llama";
const WEIGHTS: &str = "model.safetensors";

/// A tiny model folder plus the files a real repo has that a model does not need.
fn model_files(dir: &Path, family: TinyFamily, quantize: Option<(u32, usize)>) -> PathBuf {
    let path = dir.join(format!("{family:?}-{quantize:?}"));
    if !path.exists() {
        write_tiny_model(&path, &TinySpec { quantize, ..TinySpec::new(family) }).unwrap();
        std::fs::write(path.join("README.md"), "# tiny\n").unwrap();
        std::fs::write(path.join(".gitattributes"), "*.safetensors filter=lfs\n").unwrap();
        std::fs::write(path.join("modeling_tiny.py"), "raise SystemExit('never run')\n").unwrap();
        std::fs::write(path.join("consolidated.safetensors"), vec![7u8; 1000]).unwrap();
        std::fs::create_dir_all(path.join("additional_chat_templates")).unwrap();
        std::fs::write(path.join("additional_chat_templates/tool_use.jinja"), "{{ messages }}").unwrap();
    }
    path
}

/// Files a pull takes (mlx-lm's patterns without *.py).
const SKIPPED: &[&str] = &["README.md", ".gitattributes", "modeling_tiny.py", "consolidated.safetensors"];

struct Setup {
    hub: FakeHub,
    cache: tempfile::TempDir,
    models: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let setup =
            Setup { hub: FakeHub::start(), cache: tempfile::tempdir().unwrap(), models: tempfile::tempdir().unwrap() };
        setup.publish(REPO, TinyFamily::Llama, None);
        setup
    }

    fn publish(&self, repo: &str, family: TinyFamily, quantize: Option<(u32, usize)>) -> String {
        self.hub.add_repo(repo, &model_files(self.models.path(), family, quantize))
    }

    fn config(&self) -> HubConfig {
        HubConfig {
            endpoint: self.hub.url().to_string(),
            token: None,
            offline: false,
            cache_dir: self.cache.path().join("hub"),
        }
    }

    fn library(&self) -> Library {
        self.library_with(self.config(), options())
    }

    fn library_with(&self, config: HubConfig, options: DownloadOptions) -> Library {
        Library::new(config, options).unwrap()
    }

    fn repo_dir(&self) -> PathBuf {
        self.cache.path().join("hub/models--tiny-org--tiny-llama")
    }
}

/// Quick retries and frequent progress, so tests take milliseconds.
fn options() -> DownloadOptions {
    DownloadOptions {
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            read_timeout: Duration::from_secs(30),
        },
        progress_interval: Duration::from_millis(5),
        ..DownloadOptions::default()
    }
}

fn repo() -> RepoId {
    RepoId::parse(REPO).unwrap()
}

/// Waits until the download completes, fails or is cancelled.
async fn settled(library: &Library, id: &str) -> DownloadStatus {
    let mut rx = library.watch(id).unwrap();
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        rx.wait_for(|s| s.state.is_final() || s.state == DownloadState::Failed),
    )
    .await
    .expect("download did not settle")
    .map(|s| s.clone());
    status.unwrap()
}

/// Waits until `file` of the download has at least `bytes` on disk.
async fn reached(library: &Library, id: &str, file: &str, bytes: u64) {
    let mut rx = library.watch(id).unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        rx.wait_for(|s| s.files.iter().any(|f| f.name == file && f.bytes_done >= bytes)),
    )
    .await
    .expect("transfer did not get there")
    .unwrap();
}

/// Waits until every file but the weights is done and the weights have `bytes` on disk.
async fn only_weights_left(library: &Library, id: &str, bytes: u64) {
    reached(library, id, WEIGHTS, bytes).await;
    let mut rx = library.watch(id).unwrap();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| s.files_done + 1 == s.files_total))
        .await
        .expect("the other files did not finish")
        .unwrap();
}

/// Transfers of one file: (start, bytes).
fn transfers(hub: &FakeHub, file: &str) -> Vec<(u64, u64)> {
    hub.transfers().iter().filter(|t| t.repo == REPO && t.file == file).map(|t| (t.start, t.bytes)).collect()
}

fn python() -> PathBuf {
    let venv = std::env::var_os("MLX_MANAGER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlx-manager/venv"));
    let python = venv.join("bin/python3");
    assert!(python.is_file(), "run scripts/setup first (no venv at {})", venv.display());
    python
}

/// Every file under `dir` (following links) → its bytes.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            if entry.path().is_dir() {
                stack.push((entry.path(), rel));
            } else {
                out.insert(rel, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_is_byte_identical_and_laid_out_as_huggingface_hub_lays_it_out() {
    let s = Setup::new();
    let library = s.library();
    let installed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = installed.clone();
    library.on_finished(move |i| seen.lock().unwrap().push(i.clone()));

    let started = library.start(&repo(), "main").await.unwrap();
    let commit = s.hub.commit(REPO);
    assert_eq!(started.commit, commit);
    let done = settled(&library, &started.id).await;
    assert_eq!(done.state, DownloadState::Completed, "{:?}", done.error);
    assert_eq!(done.bytes_done, done.bytes_total);
    assert_eq!(done.files_done, done.files_total);
    let snapshot = s.repo_dir().join("snapshots").join(&commit);
    assert_eq!(done.path.as_deref(), Some(snapshot.as_path()));

    // Byte-identical, and only what a model needs.
    let source = read_tree(&model_files(s.models.path(), TinyFamily::Llama, None));
    let got = read_tree(&snapshot);
    let wanted: BTreeMap<String, Vec<u8>> =
        source.into_iter().filter(|(name, _)| !SKIPPED.contains(&name.as_str())).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), wanted.keys().collect::<Vec<_>>());
    assert!(got == wanted, "downloaded files differ from the served ones");

    // Relative links into blobs named by sha256 (LFS) or the git blob id.
    let weights = std::fs::read_link(snapshot.join(WEIGHTS)).unwrap();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(s.hub.file(REPO, WEIGHTS)))
    };
    assert_eq!(weights, Path::new("../../blobs").join(&sha256));
    let nested = std::fs::read_link(snapshot.join("additional_chat_templates/tool_use.jinja")).unwrap();
    assert!(nested.starts_with("../../../blobs/"), "{}", nested.display());
    assert_eq!(std::fs::read_to_string(s.repo_dir().join("refs/main")).unwrap(), commit);
    let blobs: Vec<String> = std::fs::read_dir(s.repo_dir().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(blobs.iter().all(|b| !b.ends_with(".incomplete")), "{blobs:?}");

    // The finish hook ran; the cache scan offers it.
    let hooks = installed.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1);
    assert_eq!((hooks[0].repo.as_str(), hooks[0].path.as_path()), (REPO, snapshot.as_path()));
    let cached = library.installed();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].servable.as_deref(), Some(snapshot.as_path()));
    assert_eq!(cached[0].size_bytes, done.bytes_total);

    // LFS files came from the CDN; nothing was fetched twice.
    let cdn: Vec<_> = s.hub.transfers().into_iter().filter(|t| t.cdn).collect();
    assert_eq!(cdn.len(), 1, "{cdn:?}");
    for (name, bytes) in &wanted {
        assert_eq!(s.hub.bytes_sent(REPO, name), bytes.len() as u64, "{name}");
    }

    // Python's huggingface_hub finds the snapshot offline, with mlx-lm's own patterns too.
    let script = r#"
import sys
from huggingface_hub import snapshot_download
from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS
cache, repo = sys.argv[1], sys.argv[2]
print(snapshot_download(repo, local_files_only=True, cache_dir=cache))
print(snapshot_download(repo, local_files_only=True, cache_dir=cache, allow_patterns=DEFAULT_ALLOW_PATTERNS))
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(s.cache.path().join("hub"))
        .arg(REPO)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, [snapshot.to_str().unwrap(); 2]);

    // Starting it again finds every blob in place: nothing is fetched.
    s.hub.reset_log();
    let again = library.start(&repo(), "main").await.unwrap();
    assert_ne!(again.id, started.id);
    assert_eq!(settled(&library, &again.id).await.state, DownloadState::Completed);
    assert!(s.hub.transfers().is_empty(), "{:?}", s.hub.transfers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_commit_writes_no_ref() {
    let s = Setup::new();
    let library = s.library();
    let commit = s.hub.commit(REPO);
    let started = library.start(&repo(), &commit).await.unwrap();
    assert_eq!(settled(&library, &started.id).await.state, DownloadState::Completed);
    assert!(s.repo_dir().join("snapshots").join(&commit).join("config.json").is_file());
    assert!(!s.repo_dir().join("refs").exists());
    // No `main` ref, but the only complete snapshot is still the one to serve.
    assert!(library.installed()[0].servable.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_download_resumes_without_fetching_a_byte_twice() {
    let s = Setup::new();
    let size = s.hub.file(REPO, WEIGHTS).len() as u64;
    let stall = 256 * 1024;
    assert!(size > stall + 1024);
    s.hub.stall(REPO, WEIGHTS, stall);
    let library = s.library();
    let started = library.start(&repo(), "main").await.unwrap();
    reached(&library, &started.id, WEIGHTS, stall).await;

    let paused = library.pause(&started.id).await.unwrap();
    assert_eq!(paused.state, DownloadState::Paused);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(s.hub.file(REPO, WEIGHTS)))
    };
    let partial = s.repo_dir().join(format!("blobs/{sha}.incomplete"));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), stall, "the partial blob keeps what arrived");
    assert!(!s.repo_dir().join("snapshots").exists(), "nothing is linked before every file is verified");
    assert_eq!(library.downloads()[0].state, DownloadState::Paused);

    s.hub.release(REPO, WEIGHTS);
    let resumed = library.resume(&started.id).await.unwrap();
    assert!(resumed.attempts >= 2);
    let done = settled(&library, &started.id).await;
    assert_eq!(done.state, DownloadState::Completed, "{:?}", done.error);
    assert_eq!(transfers(&s.hub, WEIGHTS), [(0, stall), (stall, size - stall)]);
    assert_eq!(
        std::fs::read(s.repo_dir().join("snapshots").join(&done.commit).join(WEIGHTS)).unwrap(),
        s.hub.file(REPO, WEIGHTS)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_download_leaves_its_partial_for_the_next_one() {
    let s = Setup::new();
    let size = s.hub.file(REPO, WEIGHTS).len() as u64;
    let stall = 128 * 1024;
    s.hub.stall(REPO, WEIGHTS, stall);
    let library = s.library();
    let started = library.start(&repo(), "main").await.unwrap();
    only_weights_left(&library, &started.id, stall).await;
    let cancelled = library.cancel(&started.id).await.unwrap();
    assert_eq!(cancelled.state, DownloadState::Cancelled);
    assert!(library.downloads().is_empty(), "a cancelled download is forgotten");
    assert!(matches!(library.status(&started.id), Err(LibraryError::NoSuchDownload(_))));
    let partial = library.installed();
    assert_eq!(partial[0].incomplete_bytes, stall);
    assert_eq!(partial[0].servable, None);

    s.hub.release(REPO, WEIGHTS);
    let next = library.start(&repo(), "main").await.unwrap();
    let done = settled(&library, &next.id).await;
    assert_eq!(done.state, DownloadState::Completed, "{:?}", done.error);
    assert_eq!(transfers(&s.hub, WEIGHTS), [(0, stall), (stall, size - stall)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_and_server_errors_are_retried_from_the_last_byte() {
    let s = Setup::new();
    let size = s.hub.file(REPO, WEIGHTS).len() as u64;
    s.hub.fail(REPO, "config.json", 503, 2);
    s.hub.fail(REPO, "tokenizer.json", 429, 1);
    s.hub.drop_after(REPO, WEIGHTS, 100_000, 2);
    let library = s.library();
    let started = library.start(&repo(), "main").await.unwrap();
    let done = settled(&library, &started.id).await;
    assert_eq!(done.state, DownloadState::Completed, "{:?}", done.error);
    // The first transfer dropped at 100 000, the second resumed there and was not dropped
    // (the fault applies to transfers that pass that byte), and nothing was sent twice.
    assert_eq!(transfers(&s.hub, WEIGHTS), [(0, 100_000), (100_000, size - 100_000)]);
    let config_requests = s.hub.requests().iter().filter(|(_, p, _)| p.ends_with("/config.json")).count();
    assert_eq!(config_requests, 3);
    assert_eq!(std::fs::read(done.path.unwrap().join(WEIGHTS)).unwrap(), s.hub.file(REPO, WEIGHTS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_keeps_failing_fails_the_download_which_resumes_later() {
    let s = Setup::new();
    s.hub.fail(REPO, "tokenizer.json", 500, 1000);
    // One file at a time: what was done, stopped or never started at the failure is known.
    let library = s.library_with(s.config(), DownloadOptions { parallel_files: 1, ..options() });
    let started = library.start(&repo(), "main").await.unwrap();
    let failed = settled(&library, &started.id).await;
    assert_eq!(failed.state, DownloadState::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.code, "hub_error");
    assert!(error.message.contains("500") && error.message.contains("tokenizer.json"), "{}", error.message);
    assert!(!s.repo_dir().join("snapshots").exists());
    assert!(library.installed()[0].servable.is_none());

    s.hub.fail(REPO, "tokenizer.json", 500, 0);
    let finished_before: Vec<String> =
        failed.files.iter().filter(|f| f.state == FileState::Done).map(|f| f.name.clone()).collect();
    let seen = s.hub.transfers().len();
    library.resume(&started.id).await.unwrap();
    let done = settled(&library, &started.id).await;
    assert_eq!(done.state, DownloadState::Completed, "{:?}", done.error);
    assert_eq!(done.error, None);
    // Files finished before the failure were not fetched again, and no byte of any file was
    // sent twice (stopped transfers resumed where they stopped).
    let again: Vec<String> = s.hub.transfers()[seen..].iter().map(|t| t.file.clone()).collect();
    assert_eq!(again, ["tokenizer.json", "tokenizer_config.json"]);
    assert!(finished_before.contains(&WEIGHTS.to_string()), "{finished_before:?}");
    for file in &done.files {
        assert_eq!(s.hub.bytes_sent(REPO, &file.name), file.size_bytes, "{}", file.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_file_is_rejected_never_linked_and_the_model_not_offered() {
    let s = Setup::new();
    s.hub.corrupt(REPO, WEIGHTS);
    let library = s.library();
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = finished.clone();
    library.on_finished(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst));
    let started = library.start(&repo(), "main").await.unwrap();
    let failed = settled(&library, &started.id).await;
    assert_eq!(failed.state, DownloadState::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.code, "checksum_mismatch");
    assert!(error.message.contains("model.safetensors") && error.message.contains("sha256"), "{}", error.message);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(s.hub.file(REPO, WEIGHTS)))
    };
    assert!(!s.repo_dir().join("blobs").join(&sha).exists(), "never stored under its name");
    assert!(!s.repo_dir().join(format!("blobs/{sha}.incomplete")).exists(), "the bad bytes are discarded");
    assert!(!s.repo_dir().join("snapshots").exists(), "never linked");
    assert!(!s.repo_dir().join("refs").exists());
    assert!(library.installed().iter().all(|r| r.servable.is_none()), "not offered for serving");
    assert!(!finished.load(std::sync::atomic::Ordering::SeqCst));
    let file = failed.files.iter().find(|f| f.name == WEIGHTS).unwrap();
    assert_eq!(file.state, FileState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_repos_need_a_token_that_never_reaches_the_cdn() {
    let s = Setup::new();
    s.hub.gate(REPO, "hf_good");
    let e = s.library().start(&repo(), "main").await.unwrap_err();
    assert!(matches!(e, LibraryError::AccessDenied { gated: true, token_sent: false, .. }), "{e:?}");
    assert!(e.to_string().contains("set HF_TOKEN"), "{e}");
    assert_eq!(e.code(), "hub_access_denied");

    let with = |token: &str| HubConfig { token: Some(SecretString::from(token)), ..s.config() };
    let e = s.library_with(with("hf_wrong"), options()).start(&repo(), "main").await.unwrap_err();
    assert!(matches!(e, LibraryError::AccessDenied { gated: true, token_sent: true, .. }), "{e:?}");
    assert!(s.hub.transfers().is_empty(), "nothing is fetched without access");

    let library = s.library_with(with("hf_good"), options());
    let started = library.start(&repo(), "main").await.unwrap();
    assert_eq!(settled(&library, &started.id).await.state, DownloadState::Completed);
    let cdn: Vec<_> = s.hub.transfers().into_iter().filter(|t| t.cdn).collect();
    assert!(!cdn.is_empty() && cdn.iter().all(|t| !t.authorized), "the token went to the CDN: {cdn:?}");
    assert!(s.hub.transfers().iter().filter(|t| !t.cdn).all(|t| t.authorized));
    assert!(s.hub.requests().iter().any(|(_, _, auth)| auth.as_deref() == Some("Bearer hf_good")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_repos_revisions_and_non_models_are_typed_errors() {
    let s = Setup::new();
    s.hub.add_files("tiny-org/not-a-model", vec![("README.md".into(), b"hi".to_vec())]);
    s.hub.add_files(
        "tiny-org/pytorch-only",
        vec![("config.json".into(), b"{}".to_vec()), ("pytorch_model.bin".into(), vec![0; 10])],
    );
    let library = s.library();
    let e = library.start(&RepoId::parse("tiny-org/nope").unwrap(), "main").await.unwrap_err();
    assert!(matches!(e, LibraryError::RepoNotFound { token_sent: false, .. }), "{e:?}");
    assert!(e.to_string().contains("HF_TOKEN"), "{e}");
    let e = library.start(&repo(), "v9").await.unwrap_err();
    assert!(matches!(e, LibraryError::RevisionNotFound { .. }), "{e:?}");
    let e = library.start(&RepoId::parse("tiny-org/not-a-model").unwrap(), "main").await.unwrap_err();
    assert!(matches!(e, LibraryError::NotAModel { has_config: false, .. }), "{e:?}");
    let e = library.start(&RepoId::parse("tiny-org/pytorch-only").unwrap(), "main").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`tiny-org/pytorch-only` is not an MLX/safetensors model: it has no model*.safetensors weights"
    );
    // A Hub that names a file outside the snapshot is refused before anything is written.
    s.hub.add_files(
        "tiny-org/evil",
        vec![
            ("config.json".into(), b"{}".to_vec()),
            ("model.safetensors".into(), vec![0; 10]),
            ("../../../escape.json".into(), b"{}".to_vec()),
        ],
    );
    let e = library.start(&RepoId::parse("tiny-org/evil").unwrap(), "main").await.unwrap_err();
    assert!(e.to_string().contains("unsafe file name `../../../escape.json`"), "{e}");
    assert!(!s.cache.path().join("hub/models--tiny-org--evil").exists());
    let e = library.start(&repo(), "bad..rev").await.unwrap_err();
    assert!(matches!(e, LibraryError::RevisionNotFound { .. }), "{e:?}");
    assert!(library.downloads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_disk_space_is_checked_before_anything_is_fetched() {
    let s = Setup::new();
    let tiny_disk = DownloadOptions { free_space: |_| Ok(1000), ..options() };
    let e = s.library_with(s.config(), tiny_disk).start(&repo(), "main").await.unwrap_err();
    let LibraryError::InsufficientDisk { needed_bytes, free_bytes, .. } = &e else { panic!("{e:?}") };
    let total: u64 = read_tree(&model_files(s.models.path(), TinyFamily::Llama, None))
        .iter()
        .filter(|(n, _)| !SKIPPED.contains(&n.as_str()))
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert_eq!((*needed_bytes, *free_bytes), (total, 1000));
    assert!(e.to_string().contains(&format!("needs {total} more bytes and 1000 are free")), "{e}");
    assert!(s.hub.transfers().is_empty());

    // Bytes already on disk are not needed again.
    s.hub.stall(REPO, WEIGHTS, 200_000);
    let library = s.library();
    let started = library.start(&repo(), "main").await.unwrap();
    only_weights_left(&library, &started.id, 200_000).await;
    library.cancel(&started.id).await.unwrap();
    let e = s.library_with(s.config(), DownloadOptions { free_space: |_| Ok(0), ..options() });
    let e = e.start(&repo(), "main").await.unwrap_err();
    let LibraryError::InsufficientDisk { needed_bytes, .. } = e else { panic!("{e:?}") };
    assert_eq!(needed_bytes, s.hub.file(REPO, WEIGHTS).len() as u64 - 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_mode_never_calls_the_hub_but_lists_the_cache() {
    let s = Setup::new();
    let library = s.library();
    let started = library.start(&repo(), "main").await.unwrap();
    settled(&library, &started.id).await;
    s.hub.reset_log();
    let offline = s.library_with(HubConfig { offline: true, ..s.config() }, options());
    assert!(matches!(offline.start(&repo(), "main").await, Err(LibraryError::Offline)));
    assert!(matches!(offline.search(&SearchQuery::default(), &|_| true).await, Err(LibraryError::Offline)));
    assert_eq!(offline.installed().len(), 1);
    assert!(s.hub.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_of_the_same_commit_is_the_same_download() {
    let s = Setup::new();
    s.hub.stall(REPO, WEIGHTS, 64 * 1024);
    let library = s.library();
    let first = library.start(&repo(), "main").await.unwrap();
    let second = library.start(&repo(), "main").await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(library.downloads().len(), 1);
    s.hub.release(REPO, WEIGHTS);
    assert_eq!(settled(&library, &first.id).await.state, DownloadState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_frees_the_space_and_cancels_downloads_of_the_repo() {
    let s = Setup::new();
    let library = s.library();
    let started = library.start(&repo(), "main").await.unwrap();
    let done = settled(&library, &started.id).await;
    let on_disk = library.installed()[0].size_bytes;
    assert_eq!(on_disk, done.bytes_total);
    let deleted = library.delete(&repo(), None).await.unwrap();
    assert!(deleted.removed_repo);
    assert_eq!(deleted.snapshots, std::slice::from_ref(&done.commit));
    assert_eq!(deleted.freed_bytes, on_disk + done.commit.len() as u64, "the blobs and the ref file");
    assert!(!s.repo_dir().exists());
    assert!(library.installed().is_empty());
    assert!(matches!(library.delete(&repo(), None).await, Err(LibraryError::NotInstalled { .. })));

    // A running download of it is cancelled first.
    s.hub.stall(REPO, WEIGHTS, 64 * 1024);
    let running = library.start(&repo(), "main").await.unwrap();
    reached(&library, &running.id, WEIGHTS, 64 * 1024).await;
    let deleted = library.delete(&repo(), None).await.unwrap();
    assert!(deleted.freed_bytes >= 64 * 1024);
    assert!(library.downloads().is_empty());
    assert!(!s.repo_dir().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_tells_size_quantization_type_and_support_before_downloading() {
    let s = Setup::new();
    s.publish("mlx-community/tiny-qwen-4bit", TinyFamily::Qwen2, Some((4, 32)));
    let mamba_config = br#"{"model_type": "mamba", "torch_dtype": "bfloat16"}"#;
    s.hub.add_files(
        "mlx-community/tiny-mamba",
        vec![
            ("config.json".into(), mamba_config.to_vec()),
            ("model.safetensors".into(), vec![1; 5000]),
            ("README.md".into(), vec![2; 300]),
        ],
    );
    s.hub.add_files("other-org/tiny-gguf", vec![("config.json".into(), b"{}".to_vec())]);
    s.hub.set_meta(REPO, 50, 1, "2026-03-01T00:00:00.000Z", "mlx");
    s.hub.set_meta("mlx-community/tiny-qwen-4bit", 500, 2, "2026-01-01T00:00:00.000Z", "mlx");
    s.hub.set_meta("mlx-community/tiny-mamba", 5, 3, "2026-02-01T00:00:00.000Z", "mlx");
    s.hub.set_meta("other-org/tiny-gguf", 9999, 4, "2026-04-01T00:00:00.000Z", "gguf");
    let library = s.library();
    let started = library.start(&repo(), "main").await.unwrap();
    let pulled = settled(&library, &started.id).await;

    let runs = |t: &str| matches!(t, "llama" | "qwen2");
    let results =
        library.search(&SearchQuery { text: Some("tiny".into()), ..Default::default() }, &runs).await.unwrap();
    let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["mlx-community/tiny-qwen-4bit", REPO, "mlx-community/tiny-mamba"],
        "mlx only, most downloaded first"
    );
    let qwen = &results[0];
    assert_eq!(qwen.summary.model_type.as_deref(), Some("qwen2"));
    assert_eq!(qwen.summary.supported, Some(true));
    let q = qwen.summary.quantization.as_ref().unwrap();
    assert_eq!((q.bits, q.group_size), (Some(4), Some(32)));
    assert!(!qwen.installed);
    assert_eq!(qwen.commit.as_deref(), Some(s.hub.commit("mlx-community/tiny-qwen-4bit").as_str()));
    let llama = &results[1];
    assert_eq!(llama.size_bytes, Some(pulled.bytes_total), "the size is what a pull downloads");
    assert_eq!((llama.summary.quantization.as_ref(), llama.summary.dtype.as_deref()), (None, Some("float32")));
    assert!(llama.installed);
    let mamba = &results[2];
    assert_eq!((mamba.summary.model_type.as_deref(), mamba.summary.supported), (Some("mamba"), Some(false)));
    assert_eq!(mamba.size_bytes, Some(5000 + mamba_config.len() as u64), "README is not downloaded");
    assert_eq!(mamba.downloads, Some(5));

    let by_author =
        SearchQuery { author: Some("mlx-community".into()), sort: SearchSort::LastModified, ..Default::default() };
    let ids: Vec<String> = library.search(&by_author, &runs).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["mlx-community/tiny-mamba", "mlx-community/tiny-qwen-4bit"]);
    let any_library = SearchQuery { library: Some(String::new()), limit: 1, ..Default::default() };
    let top = library.search(&any_library, &runs).await.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].id, "other-org/tiny-gguf");
    assert_eq!(top[0].summary.supported, Some(false), "a config without a model_type does not run");
}
