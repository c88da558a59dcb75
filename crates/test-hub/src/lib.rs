//! A fake Hugging Face Hub for tests, on 127.0.0.1 (a port the OS picks), speaking the API the
//! real one speaks as far as model downloads go:
//!
//! - `GET /api/models/{org}/{name}[/revision/{rev}]` — model info; `?blobs=true` adds each
//!   sibling's `size`, `blobId` and `lfs: {sha256, size, pointerSize}`;
//! - `GET /api/models/{org}/{name}/tree/{rev}` — the file tree, as huggingface_hub 1.x lists it;
//! - `GET /api/models?search=&author=&library=&sort=&direction=&limit=` — search;
//! - `GET|HEAD /{org}/{name}/resolve/{rev}/{file}` — regular files answered directly (`ETag` =
//!   git blob id), LFS files (`*.safetensors`) redirected (302) to a second listener standing in
//!   for the CDN, with `X-Linked-Etag` (sha256) and `X-Linked-Size`; `X-Repo-Commit` on both;
//!   `Range: bytes=N-` answered 206 with `Content-Range`;
//! - errors with the Hub's `X-Error-Code` (`RepoNotFound` — 401 without a token, 404 with one —
//!   `RevisionNotFound`, `EntryNotFound`, `GatedRepo` 401/403).
//!
//! Tests make files misbehave ([`FakeHub::stall`], [`FakeHub::fail`], [`FakeHub::drop_after`],
//! [`FakeHub::corrupt`]) and read what was sent ([`FakeHub::transfers`]): every transfer of file
//! content with the byte it started at and the bytes it sent, so a test can prove no byte was
//! sent twice. The server runs on its own thread and runtime, so sync and async tests (and
//! child processes) can all use it.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use sha1::Digest;
use tokio::sync::watch;

/// Bytes per body chunk (a stall or a drop lands exactly on the byte asked for).
const CHUNK: usize = 16 * 1024;

/// One file of a repo.
#[derive(Clone)]
struct File {
    content: Arc<Vec<u8>>,
    lfs: bool,
    sha256: String,
    /// The git blob id: of the content, or of the LFS pointer for an LFS file.
    oid: String,
    pointer_size: usize,
}

fn git_oid(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

impl File {
    fn new(name: &str, content: Vec<u8>) -> File {
        let sha256 = hex::encode(sha2::Sha256::digest(&content));
        let lfs = name.ends_with(".safetensors");
        let pointer =
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {}\n", content.len());
        let oid = if lfs { git_oid(pointer.as_bytes()) } else { git_oid(&content) };
        File { content: Arc::new(content), lfs, sha256, oid, pointer_size: pointer.len() }
    }
}

/// How a file misbehaves.
#[derive(Default, Clone)]
struct Faults {
    /// The next this-many content requests answer this status.
    fail: Option<(u16, u32)>,
    /// The next this-many transfers close the connection after this absolute byte.
    drop_after: Option<(u64, u32)>,
    /// Transfers pause at this absolute byte until released (the sender dropped).
    stall: Option<(u64, watch::Sender<bool>)>,
    /// Served with its first byte flipped (the published hashes stay those of the real bytes).
    corrupt: bool,
}

struct Repo {
    id: String,
    commit: String,
    files: BTreeMap<String, File>,
    faults: BTreeMap<String, Faults>,
    /// The token that may read a gated repo's files.
    gated_for: Option<String>,
    downloads: u64,
    likes: u64,
    last_modified: String,
    library: String,
}

impl Repo {
    fn commit_of(files: &BTreeMap<String, File>, id: &str) -> String {
        let mut h = sha1::Sha1::new();
        h.update(id.as_bytes());
        for (name, f) in files {
            h.update(name.as_bytes());
            h.update(f.oid.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// A transfer of file content (from the Hub itself or the CDN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// The repo.
    pub repo: String,
    /// The file.
    pub file: String,
    /// The first byte sent (the Range's start; 0 without one).
    pub start: u64,
    /// Bytes sent so far.
    pub bytes: u64,
    /// Whether it came with an `Authorization` header.
    pub authorized: bool,
    /// Served by the CDN listener (an LFS file after the redirect).
    pub cdn: bool,
}

struct Log {
    repo: String,
    file: String,
    start: u64,
    bytes: Arc<AtomicU64>,
    authorized: bool,
    cdn: bool,
}

#[derive(Default)]
struct Hub {
    repos: Mutex<BTreeMap<String, Repo>>,
    transfers: Mutex<Vec<Log>>,
    /// Every request: method, path and query, Authorization header.
    requests: Mutex<Vec<(String, String, Option<String>)>>,
    cdn_url: Mutex<String>,
}

/// A running fake Hub; stops when dropped.
pub struct FakeHub {
    url: String,
    hub: Arc<Hub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Release every stall so no connection keeps the runtime waiting.
        if let Ok(mut repos) = self.hub.repos.lock() {
            for repo in repos.values_mut() {
                for f in repo.faults.values_mut() {
                    f.stall = None;
                }
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FakeHub {
    /// Starts the Hub and its CDN on two ports of 127.0.0.1.
    pub fn start() -> FakeHub {
        let hub = Arc::new(Hub::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = hub.clone();
        let thread = std::thread::Builder::new()
            .name("fake-hub".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake hub runtime");
                runtime.block_on(async move {
                    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind hub");
                    let cdn = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind cdn");
                    let api_url = format!("http://{}", api_listener.local_addr().unwrap());
                    *state.cdn_url.lock().unwrap() = format!("http://{}", cdn.local_addr().unwrap());
                    let api_app = Router::new()
                        .route("/api/models", get(search))
                        .route("/api/models/{*rest}", get(api))
                        .route("/{org}/{name}/resolve/{rev}/{*file}", get(resolve))
                        .with_state(state.clone());
                    let cdn_app = Router::new().route("/lfs/{repo}/{sha}", get(cdn_file)).with_state(state.clone());
                    ready_tx.send(api_url).unwrap();
                    let (stop_cdn_tx, stop_cdn_rx) = tokio::sync::oneshot::channel::<()>();
                    let cdn_task = tokio::spawn(async move {
                        let _ = axum::serve(cdn, cdn_app)
                            .with_graceful_shutdown(async {
                                let _ = stop_cdn_rx.await;
                            })
                            .await;
                    });
                    let _ = axum::serve(api_listener, api_app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                    let _ = stop_cdn_tx.send(());
                    let _ = cdn_task.await;
                });
                runtime.shutdown_background();
            })
            .expect("fake hub thread");
        let url = ready_rx.recv().expect("fake hub started");
        FakeHub { url, hub, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT` (what `HF_ENDPOINT` is set to).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Publishes the files of `dir` (recursively) as the repo `id` (`org/name`), library `mlx`;
    /// returns its commit id. `*.safetensors` are LFS files.
    pub fn add_repo(&self, id: &str, dir: &Path) -> String {
        let mut files = Vec::new();
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((path, prefix)) = stack.pop() {
            for entry in std::fs::read_dir(&path).expect("read model dir") {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                if entry.file_type().unwrap().is_dir() {
                    stack.push((entry.path(), rel));
                } else {
                    files.push((rel, std::fs::read(entry.path()).unwrap()));
                }
            }
        }
        self.add_files(id, files)
    }

    /// Publishes `files` (path, content) as the repo `id`; returns its commit id. Replacing a
    /// repo keeps its faults and metadata.
    pub fn add_files(&self, id: &str, files: Vec<(String, Vec<u8>)>) -> String {
        let files: BTreeMap<String, File> = files.into_iter().map(|(n, c)| (n.clone(), File::new(&n, c))).collect();
        let commit = Repo::commit_of(&files, id);
        let mut repos = self.hub.repos.lock().unwrap();
        let old = repos.remove(id);
        let repo = Repo {
            id: id.to_string(),
            commit: commit.clone(),
            files,
            faults: old.as_ref().map(|r| r.faults.clone()).unwrap_or_default(),
            gated_for: old.as_ref().and_then(|r| r.gated_for.clone()),
            downloads: old.as_ref().map_or(0, |r| r.downloads),
            likes: old.as_ref().map_or(0, |r| r.likes),
            last_modified: old.as_ref().map_or("2026-01-01T00:00:00.000Z".into(), |r| r.last_modified.clone()),
            library: old.as_ref().map_or("mlx".into(), |r| r.library.clone()),
        };
        repos.insert(id.to_string(), repo);
        commit
    }

    /// Sets what search sorts and filters by.
    pub fn set_meta(&self, id: &str, downloads: u64, likes: u64, last_modified: &str, library: &str) {
        self.with_repo(id, |r| {
            r.downloads = downloads;
            r.likes = likes;
            r.last_modified = last_modified.to_string();
            r.library = library.to_string();
        });
    }

    /// Makes a repo gated: its files need `Authorization: Bearer {token}` (401 without a
    /// token, 403 with another).
    pub fn gate(&self, id: &str, token: &str) {
        self.with_repo(id, |r| r.gated_for = Some(token.to_string()));
    }

    /// The next `times` requests for the file's content answer `status`.
    pub fn fail(&self, id: &str, file: &str, status: u16, times: u32) {
        self.with_faults(id, file, |f| f.fail = (times > 0).then_some((status, times)));
    }

    /// The next `times` transfers of the file close the connection after byte `at`.
    pub fn drop_after(&self, id: &str, file: &str, at: u64, times: u32) {
        self.with_faults(id, file, |f| f.drop_after = Some((at, times)));
    }

    /// Transfers of the file pause at byte `at` (a slow file, frozen where a test wants it)
    /// until [`FakeHub::release`].
    pub fn stall(&self, id: &str, file: &str, at: u64) {
        let (tx, _) = watch::channel(false);
        self.with_faults(id, file, |f| f.stall = Some((at, tx)));
    }

    /// Ends the stall: transfers stalled so far are cut off without another byte (their
    /// clients have gone: paused, cancelled or killed), later ones are not stalled. Byte counts
    /// thus stay exactly what reached the client.
    pub fn release(&self, id: &str, file: &str) {
        self.with_faults(id, file, |f| f.stall = None);
    }

    /// Serves the file with its first byte flipped (its published hashes unchanged).
    pub fn corrupt(&self, id: &str, file: &str) {
        self.with_faults(id, file, |f| f.corrupt = true);
    }

    /// The published content of a file.
    pub fn file(&self, id: &str, file: &str) -> Vec<u8> {
        self.hub.repos.lock().unwrap()[id].files[file].content.to_vec()
    }

    /// A repo's commit id.
    pub fn commit(&self, id: &str) -> String {
        self.hub.repos.lock().unwrap()[id].commit.clone()
    }

    /// Every transfer of file content so far, in order.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.hub
            .transfers
            .lock()
            .unwrap()
            .iter()
            .map(|l| Transfer {
                repo: l.repo.clone(),
                file: l.file.clone(),
                start: l.start,
                bytes: l.bytes.load(Ordering::SeqCst),
                authorized: l.authorized,
                cdn: l.cdn,
            })
            .collect()
    }

    /// Bytes of `file` sent in all transfers.
    pub fn bytes_sent(&self, id: &str, file: &str) -> u64 {
        self.transfers().iter().filter(|t| t.repo == id && t.file == file).map(|t| t.bytes).sum()
    }

    /// Every request so far: (method, path with query, Authorization header).
    pub fn requests(&self) -> Vec<(String, String, Option<String>)> {
        self.hub.requests.lock().unwrap().clone()
    }

    /// Forgets the transfers and requests seen so far.
    pub fn reset_log(&self) {
        self.hub.transfers.lock().unwrap().clear();
        self.hub.requests.lock().unwrap().clear();
    }

    fn with_repo(&self, id: &str, f: impl FnOnce(&mut Repo)) {
        let mut repos = self.hub.repos.lock().unwrap();
        f(repos.get_mut(id).unwrap_or_else(|| panic!("no repo {id} on the fake hub")));
    }

    fn with_faults(&self, id: &str, file: &str, f: impl FnOnce(&mut Faults)) {
        self.with_repo(id, |r| f(r.faults.entry(file.to_string()).or_default()));
    }
}

fn record(hub: &Hub, method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(String::from);
    hub.requests.lock().unwrap().push((method.to_string(), uri.to_string(), auth));
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(String::from)
}

fn hub_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if !code.is_empty() {
        r.headers_mut().insert("x-error-code", HeaderValue::from_str(code).unwrap());
    }
    r.headers_mut().insert("x-error-message", HeaderValue::from_str(message).unwrap());
    r
}

fn repo_not_found(headers: &HeaderMap) -> Response {
    // Like the Hub: without a token a missing repo may be a private one, so 401.
    let status = if bearer(headers).is_some() { StatusCode::NOT_FOUND } else { StatusCode::UNAUTHORIZED };
    hub_error(status, "RepoNotFound", "Repository not found")
}

/// The revision's commit, or the answer to give.
fn resolve_revision(repo: &Repo, rev: &str) -> Result<String, Box<Response>> {
    if rev == "main" || rev == repo.commit {
        Ok(repo.commit.clone())
    } else {
        Err(Box::new(hub_error(StatusCode::NOT_FOUND, "RevisionNotFound", &format!("Invalid rev id: {rev}"))))
    }
}

fn info_json(repo: &Repo, blobs: bool) -> serde_json::Value {
    let siblings: Vec<serde_json::Value> = repo
        .files
        .iter()
        .map(|(name, f)| {
            let mut s = serde_json::json!({ "rfilename": name });
            if blobs {
                s["blobId"] = f.oid.clone().into();
                s["size"] = f.content.len().into();
                if f.lfs {
                    s["lfs"] =
                        serde_json::json!({"sha256": f.sha256, "size": f.content.len(), "pointerSize": f.pointer_size});
                }
            }
            s
        })
        .collect();
    let (author, _) = repo.id.split_once('/').unwrap_or(("", ""));
    serde_json::json!({
        "_id": format!("{:0>24}", &repo.commit[..12]),
        "id": repo.id,
        "modelId": repo.id,
        "author": author,
        "sha": repo.commit,
        "lastModified": repo.last_modified,
        "private": false,
        "disabled": false,
        "gated": if repo.gated_for.is_some() { serde_json::json!("manual") } else { serde_json::json!(false) },
        "downloads": repo.downloads,
        "likes": repo.likes,
        "library_name": repo.library,
        "tags": [repo.library.clone(), "safetensors", "text-generation"],
        "pipeline_tag": "text-generation",
        "siblings": siblings,
        "createdAt": "2025-01-01T00:00:00.000Z",
    })
}

/// `/api/models/{org}/{name}`, `…/revision/{rev}`, `…/tree/{rev}`.
async fn api(
    State(hub): State<Arc<Hub>>,
    UrlPath(rest): UrlPath<String>,
    Query(query): Query<BTreeMap<String, String>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    record(&hub, &method, &uri, &headers);
    let (id, kind, rev) = if let Some((id, rev)) = rest.split_once("/revision/") {
        (id, "info", rev)
    } else if let Some((id, rev)) = rest.split_once("/tree/") {
        (id, "tree", rev)
    } else {
        (rest.as_str(), "info", "main")
    };
    let repos = hub.repos.lock().unwrap();
    let Some(repo) = repos.get(id) else { return repo_not_found(&headers) };
    if let Err(r) = resolve_revision(repo, rev) {
        return *r;
    }
    if kind == "tree" {
        let entries: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|(name, f)| {
                let mut e = serde_json::json!({"type": "file", "oid": f.oid, "size": f.content.len(), "path": name});
                if f.lfs {
                    e["lfs"] =
                        serde_json::json!({"oid": f.sha256, "size": f.content.len(), "pointerSize": f.pointer_size});
                }
                e
            })
            .collect();
        return axum::Json(entries).into_response();
    }
    let blobs = query.get("blobs").is_some_and(|v| v == "true" || v == "1" || v == "True");
    axum::Json(info_json(repo, blobs)).into_response()
}

/// `/api/models?search=&author=&library=&sort=&direction=&limit=`.
async fn search(
    State(hub): State<Arc<Hub>>,
    Query(query): Query<BTreeMap<String, String>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    record(&hub, &method, &uri, &headers);
    let repos = hub.repos.lock().unwrap();
    let text = query.get("search").map(|s| s.to_lowercase()).unwrap_or_default();
    let mut hits: Vec<&Repo> = repos
        .values()
        .filter(|r| r.id.to_lowercase().contains(&text))
        .filter(|r| query.get("author").is_none_or(|a| r.id.split('/').next() == Some(a.as_str())))
        .filter(|r| query.get("library").is_none_or(|l| &r.library == l))
        .collect();
    match query.get("sort").map(String::as_str) {
        Some("likes") => hits.sort_by_key(|r| std::cmp::Reverse(r.likes)),
        Some("lastModified") => hits.sort_by(|a, b| b.last_modified.cmp(&a.last_modified)),
        _ => hits.sort_by_key(|r| std::cmp::Reverse(r.downloads)),
    }
    if query.get("direction").map(String::as_str) == Some("1") {
        hits.reverse();
    }
    let limit = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
    let list: Vec<serde_json::Value> = hits
        .into_iter()
        .take(limit)
        .map(|r| {
            serde_json::json!({
                "_id": format!("{:0>24}", &r.commit[..12]),
                "id": r.id,
                "modelId": r.id,
                "likes": r.likes,
                "downloads": r.downloads,
                "private": false,
                "pipeline_tag": "text-generation",
                "library_name": r.library,
                "tags": [r.library.clone(), "safetensors"],
                "createdAt": "2025-01-01T00:00:00.000Z",
            })
        })
        .collect();
    axum::Json(list).into_response()
}

/// Parses `bytes=START-[END]`.
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::RANGE)?.to_str().ok()?;
    value.strip_prefix("bytes=")?.split('-').next()?.trim().parse().ok()
}

/// `/{org}/{name}/resolve/{rev}/{file}`.
async fn resolve(
    State(hub): State<Arc<Hub>>,
    UrlPath((org, name, rev, file)): UrlPath<(String, String, String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    record(&hub, &method, &uri, &headers);
    let id = format!("{org}/{name}");
    let (entry, commit, faults) = {
        let mut repos = hub.repos.lock().unwrap();
        let Some(repo) = repos.get_mut(&id) else { return repo_not_found(&headers) };
        let commit = match resolve_revision(repo, &rev) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        if let Some(token) = &repo.gated_for {
            let message = format!("Access to model {id} is restricted. You must have access to it and be authenticated to access it. Please log in.");
            match bearer(&headers) {
                None => return hub_error(StatusCode::UNAUTHORIZED, "GatedRepo", &message),
                Some(t) if &t != token => return hub_error(StatusCode::FORBIDDEN, "GatedRepo", &message),
                Some(_) => {}
            }
        }
        let Some(entry) = repo.files.get(&file).cloned() else {
            return hub_error(StatusCode::NOT_FOUND, "EntryNotFound", &format!("{file} does not exist on \"{rev}\""));
        };
        let faults = repo.faults.entry(file.clone()).or_default();
        if method == Method::GET {
            if let Some((status, times)) = faults.fail {
                faults.fail = (times > 1).then_some((status, times - 1));
                return hub_error(StatusCode::from_u16(status).unwrap(), "", "injected failure");
            }
        }
        (entry, commit, faults.clone())
    };
    let mut common = HeaderMap::new();
    common.insert("x-repo-commit", HeaderValue::from_str(&commit).unwrap());
    common.insert(header::ETAG, HeaderValue::from_str(&format!("\"{}\"", entry.oid)).unwrap());
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if entry.lfs {
        let cdn = hub.cdn_url.lock().unwrap().clone();
        let location = format!("{cdn}/lfs/{}/{}?X-Amz-Signature=fake", id.replace('/', "--"), entry.sha256);
        common.insert("x-linked-etag", HeaderValue::from_str(&format!("\"{}\"", entry.sha256)).unwrap());
        common.insert("x-linked-size", HeaderValue::from(entry.content.len()));
        common.insert(header::LOCATION, HeaderValue::from_str(&location).unwrap());
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut().extend(common);
        return r;
    }
    serve_content(&hub, &id, &file, &entry, faults, &method, &headers, common, false)
}

/// The CDN: `/lfs/{org--name}/{sha256}`.
async fn cdn_file(
    State(hub): State<Arc<Hub>>,
    UrlPath((repo, sha)): UrlPath<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    record(&hub, &method, &uri, &headers);
    let id = repo.replacen("--", "/", 1);
    let found = {
        let mut repos = hub.repos.lock().unwrap();
        repos.get_mut(&id).and_then(|r| {
            let (name, entry) = r.files.iter().find(|(_, f)| f.sha256 == sha).map(|(n, f)| (n.clone(), f.clone()))?;
            let faults = r.faults.entry(name.clone()).or_default();
            let fail = if method == Method::GET { faults.fail.take() } else { None };
            if let Some((status, times)) = fail {
                faults.fail = (times > 1).then_some((status, times - 1));
            }
            Some((name, entry, faults.clone(), fail))
        })
    };
    let Some((name, entry, faults, fail)) = found else { return StatusCode::NOT_FOUND.into_response() };
    if let Some((status, _)) = fail {
        return (StatusCode::from_u16(status).unwrap(), "injected failure").into_response();
    }
    let mut common = HeaderMap::new();
    common.insert(header::ETAG, HeaderValue::from_static("\"cdn-etag\""));
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    serve_content(&hub, &id, &name, &entry, faults, &method, &headers, common, true)
}

#[allow(clippy::too_many_arguments)]
fn serve_content(
    hub: &Arc<Hub>,
    id: &str,
    name: &str,
    entry: &File,
    faults: Faults,
    method: &Method,
    headers: &HeaderMap,
    common: HeaderMap,
    cdn: bool,
) -> Response {
    let size = entry.content.len() as u64;
    let start = range_start(headers).unwrap_or(0);
    if start > 0 && start >= size {
        let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        r.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).unwrap());
        return r;
    }
    let status = if start > 0 { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let mut response_headers = common;
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size - start));
    if start > 0 {
        response_headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", size - 1)).unwrap(),
        );
    }
    if *method == Method::HEAD {
        let mut r = status.into_response();
        r.headers_mut().extend(response_headers);
        return r;
    }
    // This transfer's faults (a drop is used up by the transfer it applies to).
    let drop_at = {
        let mut repos = hub.repos.lock().unwrap();
        let mut drop_at = None;
        if let Some(f) = repos.get_mut(id).and_then(|r| r.faults.get_mut(name)) {
            if let Some((at, times)) = f.drop_after {
                if at > start {
                    drop_at = Some(at);
                    f.drop_after = (times > 1).then_some((at, times - 1));
                }
            }
        }
        drop_at
    };
    let bytes = Arc::new(AtomicU64::new(0));
    hub.transfers.lock().unwrap().push(Log {
        repo: id.to_string(),
        file: name.to_string(),
        start,
        bytes: bytes.clone(),
        authorized: headers.contains_key(header::AUTHORIZATION),
        cdn,
    });
    let mut content = entry.content.clone();
    if faults.corrupt {
        let mut bad = content.to_vec();
        if let Some(b) = bad.first_mut() {
            *b ^= 0xff;
        }
        content = Arc::new(bad);
    }
    let stall = faults.stall.as_ref().map(|(at, tx)| (*at, tx.subscribe()));
    let stream = async_stream::stream! {
        let mut at = start;
        while at < size {
            let mut end = (at + CHUNK as u64).min(size);
            if let Some((stall_at, _)) = &stall {
                if at < *stall_at && end > *stall_at {
                    end = *stall_at;
                }
            }
            if let Some(drop_at) = drop_at {
                if at >= drop_at {
                    // Pending once, so hyper flushes what was sent before the connection dies
                    // (else the client would never see those bytes).
                    tokio::task::yield_now().await;
                    yield Err(std::io::Error::other("injected connection drop"));
                    return;
                }
                end = end.min(drop_at);
            }
            if let Some((stall_at, released)) = &stall {
                if at == *stall_at {
                    let mut released = released.clone();
                    if released.wait_for(|r| *r).await.is_err() {
                        // Released: this connection was left by its client (paused, cancelled,
                        // killed); it sends nothing more.
                        yield Err(std::io::Error::other("stalled transfer abandoned"));
                        return;
                    }
                }
            }
            let chunk = content[at as usize..end as usize].to_vec();
            bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            at = end;
            yield Ok::<_, std::io::Error>(chunk);
        }
    };
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    r.headers_mut().extend(response_headers);
    r
}
