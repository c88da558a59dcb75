//! The Models section's commands: Hub search, downloads (start, list, pause, resume, cancel) and
//! the Hugging Face cache's models (list, delete), straight on the library the listeners share —
//! no HTTP hop, so they work while the listener is stopped. Progress reaches the window as
//! [`crate::events::DownloadProgress`] events (one watcher task per download, see
//! [`Controller::watch_download`]).
//!
//! The library's own types carry `u64`s, paths and nested error structs; the window gets flat
//! views of them here (sizes as numbers, as the other bindings do).

use mlx_manager_library::{CachedRepo, DownloadState, DownloadStatus, RepoId, SearchQuery, SearchResult, SearchSort};
use serde::{Deserialize, Serialize};
use tauri::State;

use crate::controller::Controller;
use crate::error::CommandError;

type Ctl<'a> = State<'a, Controller>;

/// How search results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ModelSort {
    /// Most downloaded first.
    Downloads,
    /// Most recently changed first.
    Recent,
}

/// One Hub search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct HubModel {
    /// `org/name`.
    pub id: String,
    /// Downloads in the last 30 days.
    #[specta(type = Option<u32>)]
    pub downloads: Option<u64>,
    /// Likes.
    #[specta(type = Option<u32>)]
    pub likes: Option<u64>,
    /// Last change (ISO 8601).
    pub last_modified: Option<String>,
    /// Bytes a download fetches (None when the file list could not be read).
    #[specta(type = Option<u32>)]
    pub size_bytes: Option<u64>,
    /// config.json's `model_type`.
    pub model_type: Option<String>,
    /// `4-bit, group 64` (or the method's name) when quantized.
    pub quantization: Option<String>,
    /// This engine runs it (None: no readable config.json).
    pub supported: Option<bool>,
    /// Its terms must be accepted and a token set before it downloads.
    pub gated: bool,
    /// A complete copy is already in the cache.
    pub installed: bool,
    /// Why size or config are missing, if they are.
    pub details_error: Option<String>,
}

impl From<SearchResult> for HubModel {
    fn from(r: SearchResult) -> Self {
        let quantization = r.summary.quantization.map(|q| match (q.bits, q.group_size, q.mode.as_deref()) {
            (Some(bits), Some(group), _) => format!("{bits}-bit, group {group}"),
            (Some(bits), None, _) => format!("{bits}-bit"),
            (None, _, Some(mode)) => mode.to_string(),
            (None, _, None) => "quantized".to_string(),
        });
        HubModel {
            id: r.id,
            downloads: r.downloads,
            likes: r.likes,
            last_modified: r.last_modified,
            size_bytes: r.size_bytes,
            model_type: r.summary.model_type,
            quantization,
            supported: r.summary.supported,
            gated: r.gated,
            installed: r.installed,
            details_error: r.details_error.map(|e| e.message),
        }
    }
}

/// Where a download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum DownloadPhase {
    /// Planned, not started yet.
    Queued,
    /// Fetching.
    Running,
    /// Paused; resumable.
    Paused,
    /// In the cache and servable.
    Completed,
    /// Stopped by an error; resumable.
    Failed,
    /// Stopped for good (partial files kept for a later download).
    Cancelled,
}

impl From<DownloadState> for DownloadPhase {
    fn from(s: DownloadState) -> Self {
        match s {
            DownloadState::Queued => DownloadPhase::Queued,
            DownloadState::Running => DownloadPhase::Running,
            DownloadState::Paused => DownloadPhase::Paused,
            DownloadState::Completed => DownloadPhase::Completed,
            DownloadState::Failed => DownloadPhase::Failed,
            DownloadState::Cancelled => DownloadPhase::Cancelled,
        }
    }
}

/// A download as the window shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct Download {
    /// `dl_…`: what pause, resume and cancel take.
    pub id: String,
    /// `org/name`.
    pub repo: String,
    /// The revision asked for.
    pub revision: String,
    /// Where it is.
    pub state: DownloadPhase,
    /// Bytes on disk.
    #[specta(type = u32)]
    pub bytes_done: u64,
    /// Bytes of all its files.
    #[specta(type = u32)]
    pub bytes_total: u64,
    /// Bytes per second lately (0 when not running).
    pub bytes_per_second: f64,
    /// Seconds left at that rate.
    pub eta_seconds: Option<f64>,
    /// Files verified.
    pub files_done: u32,
    /// Files in the download.
    pub files_total: u32,
    /// The model folder once completed.
    pub path: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<DownloadStatus> for Download {
    fn from(s: DownloadStatus) -> Self {
        Download {
            id: s.id,
            repo: s.repo.to_string(),
            revision: s.revision,
            state: s.state.into(),
            bytes_done: s.bytes_done,
            bytes_total: s.bytes_total,
            bytes_per_second: s.bytes_per_second,
            eta_seconds: s.eta_seconds,
            files_done: s.files_done as u32,
            files_total: s.files_total as u32,
            path: s.path.map(|p| p.display().to_string()),
            error: s.error.map(|e| e.message),
        }
    }
}

/// A model repo in the Hugging Face cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct InstalledModel {
    /// `org/name`.
    pub repo: String,
    /// Its cache folder.
    pub path: String,
    /// Bytes on disk (finished files).
    #[specta(type = u32)]
    pub size_bytes: u64,
    /// Bytes of unfinished downloads kept for resuming.
    #[specta(type = u32)]
    pub incomplete_bytes: u64,
    /// A complete snapshot can be served.
    pub complete: bool,
    /// config.json's `model_type` of that snapshot.
    pub model_type: Option<String>,
    /// This engine runs it.
    pub supported: bool,
    /// Loaded in the engine now (a delete then needs `force`).
    pub loaded: bool,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct DeletedModel {
    /// `org/name`.
    pub repo: String,
    /// Bytes freed.
    #[specta(type = u32)]
    pub freed_bytes: u64,
    /// It was loaded and was unloaded first.
    pub unloaded: bool,
}

impl Download {
    /// The tray's line while it is unfinished: `Downloading org/name — 45%, 12 MB/s`.
    pub fn tray_line(&self) -> Option<String> {
        let percent = self.bytes_done.saturating_mul(100).checked_div(self.bytes_total).unwrap_or(0);
        let repo = &self.repo;
        match self.state {
            DownloadPhase::Queued | DownloadPhase::Running if self.bytes_per_second >= 1.0 => Some(format!(
                "Downloading {repo} — {percent}%, {}/s",
                crate::models::human_bytes(self.bytes_per_second as u64)
            )),
            DownloadPhase::Queued | DownloadPhase::Running => Some(format!("Downloading {repo} — {percent}%")),
            DownloadPhase::Paused => Some(format!("Paused {repo} — {percent}%")),
            DownloadPhase::Failed => Some(format!("Download failed: {repo}")),
            DownloadPhase::Completed | DownloadPhase::Cancelled => None,
        }
    }
}

fn installed_model(repo: CachedRepo, loaded: &[String]) -> InstalledModel {
    let arch = repo.servable.as_deref().map(mlx_manager_engine::config::architecture);
    let id = repo.repo.to_string();
    InstalledModel {
        loaded: loaded.contains(&id),
        repo: id,
        path: repo.path.display().to_string(),
        size_bytes: repo.size_bytes,
        incomplete_bytes: repo.incomplete_bytes,
        complete: repo.servable.is_some(),
        model_type: arch.as_ref().and_then(|a| a.model_type.clone()),
        supported: arch.as_ref().is_some_and(|a| a.family.is_some()),
    }
}

fn repo_id(repo: &str) -> Result<RepoId, CommandError> {
    RepoId::parse(repo.trim()).map_err(|e| CommandError::invalid("repo", e.to_string()))
}

/// Searches the Hub (mlx models by default) with each result's size, quantization and whether
/// this engine runs it.
#[tauri::command]
#[specta::specta]
pub async fn search_models(
    ctl: Ctl<'_>,
    text: String,
    sort: ModelSort,
    limit: Option<u32>,
) -> Result<Vec<HubModel>, CommandError> {
    let lib = ctl.library()?;
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(CommandError::invalid("limit", "must be 1 to 100"));
    }
    let text = text.trim();
    let query = SearchQuery {
        text: (!text.is_empty()).then(|| text.to_string()),
        sort: match sort {
            ModelSort::Downloads => SearchSort::Downloads,
            ModelSort::Recent => SearchSort::LastModified,
        },
        limit,
        ..SearchQuery::default()
    };
    let supported = mlx_manager_engine::supported_model_types();
    let runs = |t: &str| supported.contains(&t);
    let results = lib.search(&query, &runs).await?;
    Ok(results.into_iter().map(HubModel::from).collect())
}

/// Every download not cancelled, oldest first. Unfinished ones started elsewhere (over
/// `/admin/library`) are watched from now on: their progress comes as events too.
#[tauri::command]
#[specta::specta]
pub async fn list_downloads(ctl: Ctl<'_>) -> Result<Vec<Download>, CommandError> {
    let downloads = ctl.library()?.downloads();
    for d in downloads.iter().filter(|d| !d.state.is_final()) {
        ctl.watch_download(&d.id);
    }
    Ok(downloads.into_iter().map(Download::from).collect())
}

/// Plans and starts downloading `repo` (`org/name`, optionally `@revision`); errors (unknown
/// repo, gated, not enough disk space, offline) come back here. Progress follows as events.
#[tauri::command]
#[specta::specta]
pub async fn start_download(ctl: Ctl<'_>, repo: String) -> Result<Download, CommandError> {
    let lib = ctl.library()?;
    let model: mlx_manager_library::ModelRef = repo
        .trim()
        .parse()
        .map_err(|e: mlx_manager_library::LibraryError| CommandError::invalid("repo", e.to_string()))?;
    let status = lib.start(&model.repo, &model.revision).await?;
    ctl.watch_download(&status.id);
    Ok(status.into())
}

/// Pauses a download (answers once its transfers have stopped).
#[tauri::command]
#[specta::specta]
pub async fn pause_download(ctl: Ctl<'_>, id: String) -> Result<Download, CommandError> {
    Ok(ctl.library()?.pause(&id).await?.into())
}

/// Resumes a paused or failed download from the bytes it has.
#[tauri::command]
#[specta::specta]
pub async fn resume_download(ctl: Ctl<'_>, id: String) -> Result<Download, CommandError> {
    let status = ctl.library()?.resume(&id).await?;
    ctl.watch_download(&status.id);
    Ok(status.into())
}

/// Cancels a download (or dismisses a finished one); partial files stay for a later download.
#[tauri::command]
#[specta::specta]
pub async fn cancel_download(ctl: Ctl<'_>, id: String) -> Result<Download, CommandError> {
    Ok(ctl.library()?.cancel(&id).await?.into())
}

/// The models in the Hugging Face caches (partial downloads included), with sizes.
#[tauri::command]
#[specta::specta]
pub async fn installed_models(ctl: Ctl<'_>) -> Result<Vec<InstalledModel>, CommandError> {
    let lib = ctl.library()?.clone();
    let loaded: Vec<String> =
        ctl.engine().list().await.map_err(|e| CommandError::from_engine(e, ""))?.into_iter().map(|m| m.id).collect();
    let repos = tokio::task::spawn_blocking(move || lib.installed())
        .await
        .map_err(|e| CommandError::Storage { message: e.to_string() })?;
    Ok(repos.into_iter().map(|r| installed_model(r, &loaded)).collect())
}

/// Deletes a model from the cache (its downloads cancelled first). Refused with `conflict` while
/// it is loaded, unless `force`, which unloads it first (the server's rules).
#[tauri::command]
#[specta::specta]
pub async fn delete_model(ctl: Ctl<'_>, repo: String, force: bool) -> Result<DeletedModel, CommandError> {
    let repo = repo_id(&repo)?;
    let answer = ctl.delete_model(&repo, force).await?;
    Ok(DeletedModel {
        repo: answer.deleted.repo.to_string(),
        freed_bytes: answer.deleted.freed_bytes,
        unloaded: answer.unloaded,
    })
}
