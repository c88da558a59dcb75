//! `/admin/library/…`: the model library over HTTP, for the window's Models section and for
//! scripts — Hub search (with each result's size, quantization, `model_type` and whether this
//! engine runs it), downloads (start, list, pause, resume, cancel, progress as Server-Sent
//! Events) and the Hugging Face cache's models (list, delete). The library itself
//! (`mlx-manager-library`) knows nothing of the engine; what only the engine knows (which
//! `model_type`s run, what is loaded) is decided here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mlx_manager_library::{
    CachedRepo, Deleted, DownloadStatus, Library, ModelRef, RepoId, SearchQuery, SearchResult, SearchSort,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{invalid, parse, refused, JsonBody};
use crate::middleware::RequestContext;
use crate::state::AppState;

fn library(state: &AppState) -> Result<&Library, ApiError> {
    state.library.get().ok_or(ApiError::NotFound)
}

fn done<T: Serialize>(ctx: &RequestContext, status: StatusCode, body: T) -> Response {
    ctx.record.succeed();
    (status, Json(body)).into_response()
}

/// `true`/`false` (or 1/0) query flags.
fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(invalid(name, "must be true or false")),
    }
}

fn only(query: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let errors = refused(query.keys().filter(|k| !known.contains(&k.as_str())), &[]);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The answer to a search.
#[derive(Serialize)]
struct SearchAnswer {
    results: Vec<SearchResult>,
    /// What `supported` was decided against.
    supported_model_types: Vec<&'static str>,
}

/// `GET /admin/library/search?q=&author=&library=&sort=&limit=`: `sort` is `downloads`
/// (default), `last_modified`, `likes` or `trending`; `library` defaults to `mlx` (empty: any);
/// `limit` 1–100 (20).
pub async fn search(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let lib = library(&state)?;
    only(&query, &["q", "author", "library", "sort", "limit"])?;
    let defaults = SearchQuery::default();
    let sort = match query.get("sort").map(String::as_str) {
        None | Some("downloads") => SearchSort::Downloads,
        Some("last_modified" | "lastModified" | "recent") => SearchSort::LastModified,
        Some("likes") => SearchSort::Likes,
        Some("trending") => SearchSort::Trending,
        Some(_) => return Err(invalid("sort", "must be downloads, last_modified, likes or trending")),
    };
    let limit = match query.get("limit") {
        None => defaults.limit,
        Some(l) => {
            l.parse().ok().filter(|l| (1..=100).contains(l)).ok_or_else(|| invalid("limit", "must be 1 to 100"))?
        }
    };
    let search = SearchQuery {
        text: query.get("q").cloned(),
        author: query.get("author").cloned(),
        library: query.get("library").cloned().or(defaults.library),
        sort,
        limit,
    };
    let supported = mlx_manager_engine::supported_model_types();
    let runs = |t: &str| supported.contains(&t);
    let results = lib.search(&search, &runs).await.map_err(ApiError::from_library)?;
    Ok(done(&ctx, StatusCode::OK, SearchAnswer { results, supported_model_types: supported }))
}

/// `POST /admin/library/downloads`'s body.
#[derive(Deserialize)]
struct Start {
    /// `org/name`, or `org/name@revision`.
    repo: String,
    /// A branch, tag or commit (`main` by default).
    revision: Option<String>,
}

/// `POST /admin/library/downloads` `{"repo": "org/name", "revision": "main"}`: plans the
/// download (errors come back here: unknown repo or revision, not a model, gated without a
/// token, not enough disk space, offline) and starts it; 202 with its status. The same commit
/// already downloading answers that download (a paused or failed one resumes).
pub async fn start(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let lib = library(&state)?;
    let input: Start = parse(body, &["repo", "revision"], &[])?;
    let model: ModelRef = match &input.revision {
        Some(revision) => {
            ModelRef { repo: RepoId::parse(&input.repo).map_err(ApiError::from_library)?, revision: revision.clone() }
        }
        None => input.repo.parse().map_err(ApiError::from_library)?,
    };
    let status = lib.start(&model.repo, &model.revision).await.map_err(ApiError::from_library)?;
    Ok(done(&ctx, StatusCode::ACCEPTED, status))
}

#[derive(Serialize)]
struct Downloads {
    downloads: Vec<DownloadStatus>,
}

/// `GET /admin/library/downloads`: every download not cancelled, oldest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<Response, ApiError> {
    let lib = library(&state)?;
    Ok(done(&ctx, StatusCode::OK, Downloads { downloads: lib.downloads() }))
}

/// `GET /admin/library/downloads/{id}`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = library(&state)?.status(&id).map_err(ApiError::from_library)?;
    Ok(done(&ctx, StatusCode::OK, status))
}

/// `DELETE /admin/library/downloads/{id}`: cancels a download (or dismisses a finished one);
/// answers its last status once its transfers have stopped. Partial files stay, so downloading
/// the same model again resumes them.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = library(&state)?.cancel(&id).await.map_err(ApiError::from_library)?;
    Ok(done(&ctx, StatusCode::OK, status))
}

/// `POST /admin/library/downloads/{id}/pause`: answers once its transfers have stopped.
pub async fn pause(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = library(&state)?.pause(&id).await.map_err(ApiError::from_library)?;
    Ok(done(&ctx, StatusCode::OK, status))
}

/// `POST /admin/library/downloads/{id}/resume`: a paused or failed download goes on from the
/// bytes it has.
pub async fn resume(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = library(&state)?.resume(&id).await.map_err(ApiError::from_library)?;
    Ok(done(&ctx, StatusCode::OK, status))
}

fn progress_event(status: &DownloadStatus) -> Event {
    Event::default().event("progress").data(serde_json::to_string(status).expect("serialisable"))
}

/// `GET /admin/library/downloads/{id}/progress`: Server-Sent Events, `event: progress` with the
/// download's status as `data` — the current one at once, then each change (at most four a
/// second while bytes flow, and every change of state) until it is completed or cancelled. A
/// failed or paused download's stream stays open (a resume goes on in it). Streams end when the
/// server shuts down.
pub async fn progress(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut rx = library(&state)?.watch(&id).map_err(ApiError::from_library)?;
    ctx.record.succeed();
    let server = state.clone();
    let stream = async_stream::stream! {
        let current = rx.borrow_and_update().clone();
        let finished = current.state.is_final();
        yield Ok::<_, Infallible>(progress_event(&current));
        if finished {
            return;
        }
        // Checked between changes so a paused download's stream cannot hold a shutdown.
        let mut draining = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let status = rx.borrow_and_update().clone();
                    let finished = status.state.is_final();
                    yield Ok(progress_event(&status));
                    if finished {
                        break;
                    }
                }
                _ = draining.tick() => {
                    if server.draining.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// A model in the cache, as the Models section lists it.
#[derive(Serialize)]
struct CachedModel {
    #[serde(flatten)]
    repo: CachedRepo,
    /// config.json's `model_type` of the servable snapshot.
    model_type: Option<String>,
    /// This engine runs it.
    supported: bool,
    /// Requests can name it (registered under its repo id).
    registered: bool,
    /// Loaded in the engine now.
    loaded: bool,
}

#[derive(Serialize)]
struct CachedModels {
    /// Where downloads go.
    cache_dir: PathBuf,
    models: Vec<CachedModel>,
}

/// `GET /admin/library/models`: every model repo in the Hugging Face caches (partial downloads
/// included, with `servable: null`), with its sizes, snapshots and refs, and whether it runs,
/// is registered and is loaded.
pub async fn models(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<Response, ApiError> {
    let lib = library(&state)?.clone();
    let engine = state.engine.status().await.map_err(|e| ApiError::from_engine(e, ""))?;
    let repos = tokio::task::spawn_blocking(move || lib.installed()).await.map_err(|_| ApiError::Internal)?;
    let models = repos
        .into_iter()
        .map(|repo| {
            let id = repo.repo.to_string();
            let arch = repo.servable.as_deref().map(mlx_manager_engine::config::architecture);
            let registered = state.registry.get(&id).is_some_and(|e| e.path.starts_with(&repo.path));
            CachedModel {
                model_type: arch.as_ref().and_then(|a| a.model_type.clone()),
                supported: arch.as_ref().is_some_and(|a| a.family.is_some()),
                registered,
                loaded: registered && engine.loaded.iter().any(|m| m.id == id),
                repo,
            }
        })
        .collect();
    let cache_dir = library(&state)?.config().cache_dir.clone();
    Ok(done(&ctx, StatusCode::OK, CachedModels { cache_dir, models }))
}

/// What deleting a cached model did.
#[derive(Debug, Serialize)]
pub struct DeleteAnswer {
    /// What the library removed.
    #[serde(flatten)]
    pub deleted: Deleted,
    /// It was loaded and was unloaded first (`force`).
    pub unloaded: bool,
}

/// `DELETE /admin/library/models/{org}/{name}[?revision=R][&force=true]`: deletes the model
/// (one revision and the blobs no other snapshot links, or with no `revision` the whole repo,
/// partial downloads included) after cancelling its downloads. Refused with 409 while it is
/// loaded, unless `force=true`, which unloads it first (its running requests end with 503).
pub async fn delete_model(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(repo): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let lib = library(&state)?;
    only(&query, &["force", "revision"])?;
    let force = flag(&query, "force")?;
    let revision = query.get("revision").map(String::as_str);
    let repo = RepoId::parse(&repo).map_err(ApiError::from_library)?;
    let answer = delete_cached_model(lib, &state.engine, Some(&state.registry), &repo, revision, force).await?;
    Ok(done(&ctx, StatusCode::OK, answer))
}

/// Deletes a model from the library's caches (the rules of `DELETE /admin/library/models/…`,
/// shared with the desktop shell): refused with [`ApiError::Conflict`] while it is loaded unless
/// `force`, which unloads it first. `registry` is the serving registry to keep in step (None
/// when no listener runs: then any loaded model under the repo's id counts as this one).
pub async fn delete_cached_model(
    lib: &Library,
    engine: &mlx_manager_engine::EngineHandle,
    registry: Option<&crate::registry::Registry>,
    repo: &RepoId,
    revision: Option<&str>,
    force: bool,
) -> Result<DeleteAnswer, ApiError> {
    let id = repo.to_string();
    let cached = lib.installed().into_iter().find(|r| &r.repo == repo).ok_or_else(|| {
        ApiError::from_library(mlx_manager_library::LibraryError::NotInstalled {
            repo: id.clone(),
            revision: revision.map(String::from),
        })
    })?;
    // Only the registry entry that is this cached repo's (a `--model` folder may share a bare name).
    let served_from_here = match registry {
        Some(registry) => registry.get(&id).is_some_and(|e| e.path.starts_with(&cached.path)),
        None => true,
    };
    let status = engine.status().await.map_err(|e| ApiError::from_engine(e, &id))?;
    let loaded = served_from_here && status.loaded.iter().any(|m| m.id == id);
    if loaded && !force {
        return Err(ApiError::Conflict(format!(
            "model `{id}` is loaded: unload it first (DELETE /admin/models/{id}) or delete it with ?force=true"
        )));
    }
    if loaded {
        engine.unload_forced(&id).await.map_err(|e| ApiError::from_engine(e, &id))?;
    }
    let deleted = lib.delete(repo, revision).await.map_err(ApiError::from_library)?;
    if let Some(registry) = registry.filter(|_| served_from_here) {
        registry.remove(&id);
        // Another revision (or another cache) may still hold a servable copy.
        let left = lib.installed().into_iter().find(|r| &r.repo == repo).and_then(|r| r.servable);
        if let Some(path) = left {
            registry.insert(id.clone(), path);
        }
    }
    tracing::info!(model = %id, freed_bytes = deleted.freed_bytes, forced = force, "deleted from the model library");
    Ok(DeleteAnswer { deleted, unloaded: loaded })
}
