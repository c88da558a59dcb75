//! The library handle: search, downloads (planned, run, paused, resumed, cancelled and watched)
//! and the cache's models.
//!
//! A download is planned before it starts — the revision resolved to a commit, the files a model
//! needs picked, a gated repo's access checked, the free disk space compared with what is left
//! to fetch — so those failures are the caller's answer, not a background surprise. Then one
//! task per download fetches its blobs ([`crate::fetch`]), publishes a [`DownloadStatus`] on a
//! `watch` channel (every `progress_interval` and at each change of state) and obeys a
//! [`Control`] channel. Only when every blob is verified does it link the snapshot and write
//! the ref, so a snapshot in the cache is always a complete model.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cache::{self, CachedRepo, Deleted, RepoDir};
use crate::env::HubConfig;
use crate::error::{ErrorInfo, LibraryError, Result};
use crate::fetch::{self, Check, Counter, Fetched, Job, Work};
use crate::hub::{is_gated, Hub};
use crate::repo::{valid_revision, RepoId};
use crate::search::{self, SearchQuery, SearchResult};
use crate::select::{is_model_file, is_weights};

/// Retries of failed requests and interrupted transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request (and consecutive interrupted transfers without progress) before failing.
    pub attempts: u32,
    /// The first wait; doubled each try.
    pub base_delay: Duration,
    /// The longest wait (also caps a `Retry-After`).
    pub max_delay: Duration,
    /// A transfer with no byte for this long counts as interrupted.
    pub read_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt + 1`: exponential with up to 25 % jitter, or the server's
    /// `Retry-After`; never above `max_delay`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let jitter = exp.mul_f64(rand::rng().random_range(0.0..0.25));
        (exp + jitter).min(self.max_delay)
    }
}

/// How downloads run.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Files fetched at once.
    pub parallel_files: usize,
    /// Retries.
    pub retry: RetryPolicy,
    /// How often a running download publishes its status.
    pub progress_interval: Duration,
    /// More caches whose models count as installed and can be deleted (the one downloads go to
    /// is always included first); see [`crate::hub_dirs`].
    pub extra_caches: Vec<PathBuf>,
    /// Free bytes where the cache is ([`crate::disk`]'s statvfs; tests substitute their own).
    pub free_space: fn(&Path) -> std::io::Result<u64>,
}

impl Default for DownloadOptions {
    fn default() -> DownloadOptions {
        DownloadOptions {
            parallel_files: 4,
            retry: RetryPolicy::default(),
            progress_interval: Duration::from_millis(250),
            extra_caches: Vec::new(),
            free_space: crate::disk::free_space,
        }
    }
}

/// Where a download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Planned; its task has not started yet.
    Queued,
    /// Fetching.
    Running,
    /// Stopped by a pause; partial files kept; resumable.
    Paused,
    /// Every file verified and linked: the model is in the cache.
    Completed,
    /// Stopped by an error (in `error`); partial files kept; resumable.
    Failed,
    /// Stopped for good by a cancel; partial files kept, so a later download of the same model
    /// resumes them.
    Cancelled,
}

impl DownloadState {
    /// No more changes will come.
    pub fn is_final(self) -> bool {
        matches!(self, DownloadState::Completed | DownloadState::Cancelled)
    }
}

/// A file's state in a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Not started (or stopped by a pause).
    Pending,
    /// Bytes arriving.
    Downloading,
    /// Verified and in `blobs/`.
    Done,
    /// It failed (the download's `error` says why).
    Failed,
}

/// One file of a download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileStatus {
    /// Its path in the repo.
    pub name: String,
    /// Its size.
    pub size_bytes: u64,
    /// Bytes on disk.
    pub bytes_done: u64,
    /// Its state.
    pub state: FileState,
}

/// A download as its watchers see it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DownloadStatus {
    /// `dl_` + 12 hex digits.
    pub id: String,
    /// The repo.
    pub repo: RepoId,
    /// The revision asked for (`main`, a tag, a commit).
    pub revision: String,
    /// The commit it resolved to.
    pub commit: String,
    /// Where it is.
    pub state: DownloadState,
    /// Bytes on disk (kept partial bytes of an earlier try included).
    pub bytes_done: u64,
    /// Bytes of all its files.
    pub bytes_total: u64,
    /// Bytes per second over the last few seconds (0 when not running).
    pub bytes_per_second: f64,
    /// Seconds left at that rate (None when not running or no rate yet).
    pub eta_seconds: Option<f64>,
    /// Files verified.
    pub files_done: usize,
    /// Files in the download.
    pub files_total: usize,
    /// Each file.
    pub files: Vec<FileStatus>,
    /// The snapshot folder once completed (the model folder to serve).
    pub path: Option<PathBuf>,
    /// Why it failed.
    pub error: Option<ErrorInfo>,
    /// When it was started (RFC 3339, UTC).
    pub started_at: String,
    /// Times its transfers have (re)started: each resume counts one.
    pub attempts: u32,
}

/// What a download's task is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Fetch.
    Run,
    /// Stop transfers, keep everything, wait for `Run` or `Cancel`.
    Pause,
    /// Stop for good.
    Cancel,
}

/// A finished download, as handed to [`Library::on_finished`] hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The repo (the id to serve it under).
    pub repo: RepoId,
    /// The revision asked for.
    pub revision: String,
    /// Its commit.
    pub commit: String,
    /// The snapshot folder.
    pub path: PathBuf,
}

type Hook = Arc<dyn Fn(&Installed) + Send + Sync>;

/// What a download's task needs (never the download list: a task must not keep the library
/// alive, so dropping the [`Library`] ends its tasks).
pub(crate) struct Shared {
    pub config: HubConfig,
    pub hub: Hub,
    pub options: DownloadOptions,
    hooks: Mutex<Vec<Hook>>,
}

/// A planned download.
struct Plan {
    repo: RepoId,
    revision: String,
    commit: String,
    dir: RepoDir,
    /// Unique blobs to fetch.
    jobs: Vec<Job>,
    /// (file, its job) in the repo's order.
    files: Vec<(String, usize)>,
}

struct Entry {
    id: String,
    repo: RepoId,
    commit: String,
    control: watch::Sender<Control>,
    status: watch::Receiver<DownloadStatus>,
}

struct Inner {
    shared: Arc<Shared>,
    downloads: Mutex<Vec<Entry>>,
}

/// The model library: search, downloads, and the cache's models. Cheap to clone (one shared
/// state); downloads run as tasks on the caller's tokio runtime and end when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("config", &self.inner.shared.config).finish_non_exhaustive()
    }
}

/// A relative path inside a snapshot: no absolute path, no `..`, `.` or empty components, no
/// backslashes or NULs.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains(['\\', '\0'])
        && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

fn download_id() -> String {
    format!("dl_{:012x}", rand::rng().random::<u64>() & 0xffff_ffff_ffff)
}

impl Library {
    /// A library over `config` (the cache downloads go to, the Hub and its token).
    pub fn new(config: HubConfig, options: DownloadOptions) -> Result<Library> {
        let hub = Hub::new(&config.endpoint, config.token.clone(), options.retry)?;
        let shared = Arc::new(Shared { config, hub, options, hooks: Mutex::new(Vec::new()) });
        Ok(Library { inner: Arc::new(Inner { shared, downloads: Mutex::new(Vec::new()) }) })
    }

    /// Its configuration.
    pub fn config(&self) -> &HubConfig {
        &self.inner.shared.config
    }

    /// The caches it reads: the download cache, then [`DownloadOptions::extra_caches`].
    pub fn caches(&self) -> Vec<PathBuf> {
        let shared = &self.inner.shared;
        let mut caches = vec![shared.config.cache_dir.clone()];
        for extra in &shared.options.extra_caches {
            if !caches.contains(extra) {
                caches.push(extra.clone());
            }
        }
        caches
    }

    /// Calls `hook` with every download that completes from now on (registering the model
    /// with a server, say). Hooks run on the download's task: keep them short.
    pub fn on_finished(&self, hook: impl Fn(&Installed) + Send + Sync + 'static) {
        self.inner.shared.hooks.lock().expect("hooks lock").push(Arc::new(hook));
    }

    fn online(&self) -> Result<&Hub> {
        if self.inner.shared.config.offline {
            return Err(LibraryError::Offline);
        }
        Ok(&self.inner.shared.hub)
    }

    /// Searches the Hub. `supported` says whether this engine runs a `model_type`.
    pub async fn search(
        &self,
        query: &SearchQuery,
        supported: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<SearchResult>> {
        let hub = self.online()?;
        let installed: Vec<String> =
            self.installed().into_iter().filter(|r| r.servable.is_some()).map(|r| r.repo.to_string()).collect();
        search::search(hub, query, supported, &|id: &str| installed.iter().any(|r| r == id)).await
    }

    /// The models in the caches (see [`cache::scan_all`]).
    pub fn installed(&self) -> Vec<CachedRepo> {
        cache::scan_all(&self.caches())
    }

    /// Plans a download and starts it on the current tokio runtime. A download of the same
    /// commit that is not finished is returned instead of a second one. Fails before anything
    /// is fetched for: offline mode, unknown repo or revision, a repo that is not a model, a
    /// gated/private repo without access, too little disk space.
    pub async fn start(&self, repo: &RepoId, revision: &str) -> Result<DownloadStatus> {
        let hub = self.online()?;
        if !valid_revision(revision) {
            return Err(LibraryError::RevisionNotFound { repo: repo.to_string(), revision: revision.to_string() });
        }
        let plan = self.plan(hub, repo, revision).await?;
        let mut downloads = self.inner.downloads.lock().expect("downloads lock");
        if let Some(existing) = downloads.iter().find(|d| {
            d.repo == plan.repo && d.commit == plan.commit && d.status.borrow().state != DownloadState::Completed
        }) {
            // Starting it again resumes it.
            if matches!(existing.status.borrow().state, DownloadState::Paused | DownloadState::Failed) {
                let _ = existing.control.send(Control::Run);
            }
            return Ok(existing.status.borrow().clone());
        }
        let id = download_id();
        let status = initial_status(&id, &plan);
        let (status_tx, status_rx) = watch::channel(status.clone());
        let (control_tx, control_rx) = watch::channel(Control::Run);
        downloads.push(Entry {
            id,
            repo: plan.repo.clone(),
            commit: plan.commit.clone(),
            control: control_tx,
            status: status_rx,
        });
        drop(downloads);
        let span = tracing::info_span!("download", repo = %plan.repo, commit = %plan.commit);
        tokio::spawn(run(self.inner.shared.clone(), plan, control_rx, status_tx).instrument(span));
        Ok(status)
    }

    async fn plan(&self, hub: &Hub, repo: &RepoId, revision: &str) -> Result<Plan> {
        let shared = &self.inner.shared;
        let info = hub.model_info(repo, revision).await?;
        let url = hub.info_url(repo, revision).to_string();
        let commit = info
            .sha
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| LibraryError::Protocol { url: url.clone(), message: "no `sha` in the model info".into() })?;
        let mut jobs: Vec<Job> = Vec::new();
        let mut files = Vec::new();
        for sibling in info.siblings.iter().filter(|s| is_model_file(&s.rfilename)) {
            // Names from the network become paths: nothing may point outside the repo's folder.
            if !safe_file_name(&sibling.rfilename) {
                return Err(LibraryError::Protocol {
                    url,
                    message: format!("unsafe file name `{}` in the model info", sibling.rfilename),
                });
            }
            let (blob, size, check) = match (&sibling.lfs, &sibling.blob_id) {
                (Some(lfs), _) => {
                    (lfs.sha256.to_ascii_lowercase(), lfs.size, Check::Sha256(lfs.sha256.to_ascii_lowercase()))
                }
                (None, Some(id)) => {
                    (id.to_ascii_lowercase(), sibling.size.unwrap_or(0), Check::GitSha1(id.to_ascii_lowercase()))
                }
                (None, None) => {
                    return Err(LibraryError::Protocol {
                        url,
                        message: format!("no blob id or LFS hash for `{}`", sibling.rfilename),
                    })
                }
            };
            if !(blob.len() == 40 || blob.len() == 64) || !blob.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LibraryError::Protocol {
                    url,
                    message: format!("`{}` has no valid blob id or LFS hash (`{blob}`)", sibling.rfilename),
                });
            }
            let job = match jobs.iter().position(|j| j.blob == blob) {
                Some(i) => i,
                None => {
                    jobs.push(Job { blob, file: sibling.rfilename.clone(), size, check });
                    jobs.len() - 1
                }
            };
            files.push((sibling.rfilename.clone(), job));
        }
        let has_config = files.iter().any(|(f, _)| f == "config.json");
        if !has_config || !files.iter().any(|(f, _)| is_weights(f)) {
            return Err(LibraryError::NotAModel { repo: repo.to_string(), has_config });
        }
        if is_gated(&info.gated) || info.private {
            hub.probe(repo, &commit, "config.json").await?;
        }
        let dir = RepoDir::new(&shared.config.cache_dir, repo);
        let needed: u64 = jobs
            .iter()
            .filter(|j| std::fs::metadata(dir.blob(&j.blob)).map(|m| m.len()).ok() != Some(j.size))
            .map(|j| j.size.saturating_sub(std::fs::metadata(dir.incomplete(&j.blob)).map(|m| m.len()).unwrap_or(0)))
            .sum();
        let free = (shared.options.free_space)(&shared.config.cache_dir)
            .map_err(LibraryError::io(&shared.config.cache_dir))?;
        if needed > free {
            return Err(LibraryError::InsufficientDisk {
                path: shared.config.cache_dir.clone(),
                needed_bytes: needed,
                free_bytes: free,
            });
        }
        Ok(Plan { repo: repo.clone(), revision: revision.to_string(), commit, dir, jobs, files })
    }

    /// Every download not cancelled, oldest first (completed and failed ones stay until
    /// cancelled/dismissed).
    pub fn downloads(&self) -> Vec<DownloadStatus> {
        self.inner.downloads.lock().expect("downloads lock").iter().map(|d| d.status.borrow().clone()).collect()
    }

    /// One download.
    pub fn status(&self, id: &str) -> Result<DownloadStatus> {
        Ok(self.watch(id)?.borrow().clone())
    }

    /// A download's status channel (the current value, then each change).
    pub fn watch(&self, id: &str) -> Result<watch::Receiver<DownloadStatus>> {
        let downloads = self.inner.downloads.lock().expect("downloads lock");
        let entry = downloads.iter().find(|d| d.id == id).ok_or_else(|| LibraryError::NoSuchDownload(id.into()))?;
        Ok(entry.status.clone())
    }

    fn entry(&self, id: &str) -> Result<(watch::Sender<Control>, watch::Receiver<DownloadStatus>)> {
        let downloads = self.inner.downloads.lock().expect("downloads lock");
        let entry = downloads.iter().find(|d| d.id == id).ok_or_else(|| LibraryError::NoSuchDownload(id.into()))?;
        Ok((entry.control.clone(), entry.status.clone()))
    }

    /// Pauses a running download; returns once its transfers stopped (files flushed).
    pub async fn pause(&self, id: &str) -> Result<DownloadStatus> {
        let (control, mut status) = self.entry(id)?;
        if status.borrow().state.is_final() {
            return Ok(status.borrow().clone());
        }
        let _ = control.send(Control::Pause);
        settle(&mut status, |s| matches!(s, DownloadState::Paused | DownloadState::Failed) || s.is_final()).await
    }

    /// Resumes a paused or failed download (kept bytes are not fetched again).
    pub async fn resume(&self, id: &str) -> Result<DownloadStatus> {
        let (control, mut status) = self.entry(id)?;
        let before = status.borrow().clone();
        if !matches!(before.state, DownloadState::Paused | DownloadState::Failed) {
            return Ok(before);
        }
        let _ = control.send(Control::Run);
        let attempts = before.attempts;
        let result = status.wait_for(|s| s.attempts > attempts || s.state.is_final()).await.map(|s| s.clone());
        Ok(result.unwrap_or_else(|_| status.borrow().clone()))
    }

    /// Cancels a download (or dismisses a finished one) and forgets it; returns its last
    /// status once its transfers stopped. Partial files stay for a later download to resume.
    pub async fn cancel(&self, id: &str) -> Result<DownloadStatus> {
        let (control, mut status) = self.entry(id)?;
        let _ = control.send(Control::Cancel);
        let last = settle(&mut status, DownloadState::is_final).await?;
        self.inner.downloads.lock().expect("downloads lock").retain(|d| d.id != id);
        Ok(last)
    }

    /// Deletes a model from the cache that holds it (see [`cache::delete`]), after cancelling
    /// its downloads. Whether it may be deleted while loaded is the caller's decision.
    pub async fn delete(&self, repo: &RepoId, revision: Option<&str>) -> Result<Deleted> {
        let ids: Vec<String> = {
            let downloads = self.inner.downloads.lock().expect("downloads lock");
            downloads.iter().filter(|d| &d.repo == repo).map(|d| d.id.clone()).collect()
        };
        for id in ids {
            let _ = self.cancel(&id).await;
        }
        let cache = self.caches().into_iter().find(|c| c.join(repo.folder_name()).is_dir()).ok_or_else(|| {
            LibraryError::NotInstalled { repo: repo.to_string(), revision: revision.map(String::from) }
        })?;
        let repo = repo.clone();
        let revision = revision.map(String::from);
        tokio::task::spawn_blocking(move || cache::delete(&cache, &repo, revision.as_deref()))
            .await
            .map_err(|e| LibraryError::Io { path: PathBuf::new(), source: std::io::Error::other(e) })?
    }
}

/// Waits until the status's state satisfies `done` (or its task is gone).
async fn settle(
    status: &mut watch::Receiver<DownloadStatus>,
    done: impl Fn(DownloadState) -> bool,
) -> Result<DownloadStatus> {
    let result = status.wait_for(|s| done(s.state)).await.map(|s| s.clone());
    Ok(result.unwrap_or_else(|_| status.borrow().clone()))
}

fn initial_status(id: &str, plan: &Plan) -> DownloadStatus {
    DownloadStatus {
        id: id.to_string(),
        repo: plan.repo.clone(),
        revision: plan.revision.clone(),
        commit: plan.commit.clone(),
        state: DownloadState::Queued,
        bytes_done: 0,
        bytes_total: plan.files.iter().map(|(_, j)| plan.jobs[*j].size).sum(),
        bytes_per_second: 0.0,
        eta_seconds: None,
        files_done: 0,
        files_total: plan.files.len(),
        files: plan
            .files
            .iter()
            .map(|(name, j)| FileStatus {
                name: name.clone(),
                size_bytes: plan.jobs[*j].size,
                bytes_done: 0,
                state: FileState::Pending,
            })
            .collect(),
        path: None,
        error: None,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        attempts: 0,
    }
}

/// Turns the counters into statuses, with a rate over the last few seconds.
struct Publisher {
    tx: watch::Sender<DownloadStatus>,
    counters: Vec<Arc<Counter>>,
    plan_files: Vec<usize>,
    samples: VecDeque<(Instant, u64)>,
}

/// The rate's window.
const RATE_WINDOW: Duration = Duration::from_secs(5);

impl Publisher {
    fn publish(&mut self, state: DownloadState, error: Option<ErrorInfo>, path: Option<PathBuf>) {
        let now = Instant::now();
        let fetched: u64 = self.counters.iter().map(|c| c.fetched.load(Ordering::Relaxed)).sum();
        if state == DownloadState::Running {
            self.samples.push_back((now, fetched));
            while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
                self.samples.pop_front();
            }
        } else {
            self.samples.clear();
        }
        let rate = match (self.samples.front(), self.samples.back()) {
            (Some((t0, b0)), Some((t1, b1))) if *t1 > *t0 => (b1 - b0) as f64 / t1.duration_since(*t0).as_secs_f64(),
            _ => 0.0,
        };
        let counters = &self.counters;
        let plan_files = &self.plan_files;
        self.tx.send_modify(|s| {
            for (file, job) in s.files.iter_mut().zip(plan_files) {
                let c = &counters[*job];
                file.bytes_done = c.done.load(Ordering::Relaxed).min(file.size_bytes);
                file.state = match c.state.load(Ordering::Relaxed) {
                    fetch::DONE => FileState::Done,
                    fetch::DOWNLOADING => FileState::Downloading,
                    fetch::FAILED => FileState::Failed,
                    _ => FileState::Pending,
                };
                if file.state == FileState::Done {
                    file.bytes_done = file.size_bytes;
                }
            }
            s.bytes_done = s.files.iter().map(|f| f.bytes_done).sum();
            s.files_done = s.files.iter().filter(|f| f.state == FileState::Done).count();
            if state == DownloadState::Running && s.state != DownloadState::Running {
                s.attempts += 1;
            }
            s.state = state;
            s.bytes_per_second = rate;
            let left = s.bytes_total.saturating_sub(s.bytes_done);
            s.eta_seconds = (state == DownloadState::Running && rate > 0.0).then(|| left as f64 / rate);
            if state == DownloadState::Running {
                s.error = None;
            }
            if error.is_some() {
                s.error = error;
            }
            if path.is_some() {
                s.path = path;
            }
        });
    }
}

/// A download's task.
async fn run(
    shared: Arc<Shared>,
    plan: Plan,
    mut control: watch::Receiver<Control>,
    tx: watch::Sender<DownloadStatus>,
) {
    let counters: Vec<Arc<Counter>> = plan.jobs.iter().map(|_| Arc::new(Counter::default())).collect();
    let mut publisher = Publisher {
        tx,
        counters: counters.clone(),
        plan_files: plan.files.iter().map(|(_, j)| *j).collect(),
        samples: VecDeque::new(),
    };
    let work = Work { repo: &plan.repo, commit: &plan.commit, dir: &plan.dir, jobs: &plan.jobs, counters: &counters };
    loop {
        let wanted = *control.borrow_and_update();
        match wanted {
            Control::Cancel => {
                publisher.publish(DownloadState::Cancelled, None, None);
                return;
            }
            Control::Pause => {
                publisher.publish(DownloadState::Paused, None, None);
                if control.changed().await.is_err() {
                    publisher.publish(DownloadState::Cancelled, None, None);
                    return;
                }
                continue;
            }
            Control::Run => {}
        }
        publisher.publish(DownloadState::Running, None, None);
        let stop = CancellationToken::new();
        let fetching = fetch::fetch_all(&shared, &work, &stop);
        tokio::pin!(fetching);
        let mut ticker = tokio::time::interval(shared.options.progress_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut control_open = true;
        let result = loop {
            tokio::select! {
                result = &mut fetching => break result,
                _ = ticker.tick() => publisher.publish(DownloadState::Running, None, None),
                changed = control.changed(), if control_open => {
                    if changed.is_err() {
                        // The library is gone: stop (a cancel, partial files kept).
                        control_open = false;
                        stop.cancel();
                    } else if *control.borrow() != Control::Run {
                        stop.cancel();
                    }
                }
            }
        };
        match result {
            Ok(Fetched::All) => match finish(&plan) {
                Ok(installed) => {
                    tracing::info!(repo = %plan.repo, path = %installed.path.display(), "download complete");
                    // Hooks first: whoever sees `completed` can use the model at once.
                    let hooks: Vec<Hook> = shared.hooks.lock().expect("hooks lock").clone();
                    for hook in hooks {
                        hook(&installed);
                    }
                    publisher.publish(DownloadState::Completed, None, Some(installed.path.clone()));
                    return;
                }
                Err(e) => {
                    if !wait_after_failure(&mut publisher, &mut control, e).await {
                        return;
                    }
                }
            },
            Ok(Fetched::Stopped) if !control_open => {
                publisher.publish(DownloadState::Cancelled, None, None);
                return;
            }
            Ok(Fetched::Stopped) => {}
            Err(e) => {
                if !wait_after_failure(&mut publisher, &mut control, e).await {
                    return;
                }
            }
        }
    }
}

/// Publishes the failure and waits for a resume (true) or a cancel (false).
async fn wait_after_failure(
    publisher: &mut Publisher,
    control: &mut watch::Receiver<Control>,
    e: LibraryError,
) -> bool {
    tracing::warn!(error = %e, "download failed");
    publisher.publish(DownloadState::Failed, Some(e.info()), None);
    loop {
        if control.changed().await.is_err() {
            return false;
        }
        match *control.borrow_and_update() {
            Control::Run => return true,
            Control::Cancel => {
                publisher.publish(DownloadState::Cancelled, None, None);
                return false;
            }
            Control::Pause => {}
        }
    }
}

/// Every blob is verified: link the snapshot, then point the ref at it.
fn finish(plan: &Plan) -> Result<Installed> {
    let links: Vec<(String, String)> =
        plan.files.iter().map(|(f, j)| (f.clone(), plan.jobs[*j].blob.clone())).collect();
    let path = cache::link_snapshot(&plan.dir, &plan.commit, &links)?;
    // A commit id needs no ref (huggingface_hub writes none for it either).
    if plan.revision != plan.commit {
        cache::write_ref(&plan.dir, &plan.revision, &plan.commit)?;
    }
    Ok(Installed { repo: plan.repo.clone(), revision: plan.revision.clone(), commit: plan.commit.clone(), path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_the_hub_stay_inside_the_snapshot() {
        for ok in ["config.json", "sub/dir/t.jinja", "model-00001-of-00002.safetensors"] {
            assert!(safe_file_name(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x.json", "a/../../x.json", "a//b.json", "./a.json", "a\\b.json", "a\0.json"]
        {
            assert!(!safe_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..Default::default()
        };
        for (attempt, base) in [(1, 100), (2, 200), (3, 400)] {
            let d = p.delay(attempt, None).as_millis() as u64;
            assert!((base..=base * 5 / 4).contains(&d), "attempt {attempt}: {d} ms");
        }
        assert_eq!(p.delay(10, None), Duration::from_secs(1));
        assert_eq!(p.delay(1, Some(Duration::from_secs(60))), Duration::from_secs(1));
        assert_eq!(p.delay(1, Some(Duration::from_millis(300))), Duration::from_millis(300));
    }
}
