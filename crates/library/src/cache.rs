//! The Hugging Face cache on disk: paths, the scan of what is there, linking a finished download
//! into a snapshot, and deleting a model.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{LibraryError, Result};
use crate::repo::{valid_revision, RepoId};

/// Paths inside one repo's cache folder.
#[derive(Debug, Clone)]
pub(crate) struct RepoDir {
    /// The hub cache this repo is in.
    pub cache: PathBuf,
    /// `<cache>/models--org--name`.
    pub root: PathBuf,
}

impl RepoDir {
    pub fn new(cache: &Path, repo: &RepoId) -> RepoDir {
        RepoDir { cache: cache.to_path_buf(), root: cache.join(repo.folder_name()) }
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub fn blob(&self, name: &str) -> PathBuf {
        self.blobs().join(name)
    }

    /// Where a blob grows while it downloads (huggingface_hub's name for it).
    pub fn incomplete(&self, name: &str) -> PathBuf {
        self.blobs().join(format!("{name}.incomplete"))
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    pub fn reference(&self, revision: &str) -> PathBuf {
        self.root.join("refs").join(revision)
    }

    pub fn folder_name(&self) -> String {
        self.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// One snapshot (a commit) of a cached repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The commit id (the folder's name).
    pub commit: String,
    /// `…/snapshots/<commit>`: the model folder the engine loads.
    pub path: PathBuf,
    /// Branches and tags (`refs/…`) pointing at it.
    pub refs: Vec<String>,
    /// Its files (paths in the repo), sorted.
    pub files: Vec<String>,
    /// Bytes of its files (following links).
    pub size_bytes: u64,
    /// It has a config.json and every weight file (all shards its index names, or at least one
    /// `*.safetensors`): only complete snapshots are offered for serving.
    pub complete: bool,
}

/// A repo in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CachedRepo {
    /// `org/name`.
    pub repo: RepoId,
    /// `<cache>/models--org--name`.
    pub path: PathBuf,
    /// Its snapshots, the one to serve first, then newest first.
    pub snapshots: Vec<Snapshot>,
    /// `refs/<name>` → commit.
    pub refs: BTreeMap<String, String>,
    /// Bytes on disk (every blob once, however many snapshots link it; `.incomplete` excluded).
    pub size_bytes: u64,
    /// Bytes of unfinished downloads (`blobs/*.incomplete`), kept for resuming.
    pub incomplete_bytes: u64,
    /// The snapshot to serve: `refs/main`'s when complete, else the newest complete one.
    pub servable: Option<PathBuf>,
}

impl CachedRepo {
    /// The snapshot [`CachedRepo::servable`] names.
    pub fn servable_snapshot(&self) -> Option<&Snapshot> {
        let path = self.servable.as_ref()?;
        self.snapshots.iter().find(|s| &s.path == path)
    }
}

/// Files under `dir`, as `/`-separated paths relative to it (symlinks are files here).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push((entry.path(), rel)),
                Ok(_) => out.push(rel),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// A config.json and every weight file, following links (a dangling link is missing).
fn is_complete(dir: &Path, files: &[String]) -> bool {
    if !dir.join("config.json").is_file() {
        return false;
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let shards: Option<BTreeSet<String>> = std::fs::read_to_string(&index)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| {
                j.get("weight_map")?
                    .as_object()
                    .map(|m| m.values().filter_map(|v| v.as_str()).map(String::from).collect())
            });
        return shards.is_some_and(|s| !s.is_empty() && s.iter().all(|f| dir.join(f).is_file()));
    }
    files.iter().any(|f| !f.contains('/') && f.ends_with(".safetensors") && dir.join(f).is_file())
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads one repo folder.
pub(crate) fn scan_repo(dir: &RepoDir, repo: RepoId) -> CachedRepo {
    let mut refs = BTreeMap::new();
    for name in files_under(&dir.root.join("refs")) {
        if let Ok(commit) = std::fs::read_to_string(dir.reference(&name)) {
            refs.insert(name, commit.trim().to_string());
        }
    }
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut size_bytes = 0;
    let mut count = |path: &Path| -> u64 {
        let Ok(meta) = std::fs::metadata(path) else { return 0 };
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if seen.insert(real) {
            size_bytes += meta.len();
        }
        meta.len()
    };
    let mut snapshots = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.root.join("snapshots")) {
        for entry in entries.filter_map(|e| e.ok()).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let commit = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let files = files_under(&path);
            let size = files.iter().map(|f| count(&path.join(f))).sum();
            let complete = is_complete(&path, &files);
            let at: Vec<String> = refs.iter().filter(|(_, c)| **c == commit).map(|(r, _)| r.clone()).collect();
            snapshots.push((modified(&path), Snapshot { commit, path, refs: at, files, size_bytes: size, complete }));
        }
    }
    let mut incomplete_bytes = 0;
    if let Ok(entries) = std::fs::read_dir(dir.blobs()) {
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "incomplete") {
                incomplete_bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            } else {
                count(&path);
            }
        }
    }
    // Newest first; then the one to serve moves to the front.
    snapshots.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.commit.cmp(&b.1.commit)));
    let mut snapshots: Vec<Snapshot> = snapshots.into_iter().map(|(_, s)| s).collect();
    let main = refs.get("main").and_then(|c| snapshots.iter().position(|s| &s.commit == c && s.complete));
    let chosen = main.or_else(|| snapshots.iter().position(|s| s.complete));
    if let Some(i) = chosen {
        let s = snapshots.remove(i);
        snapshots.insert(0, s);
    }
    let servable = chosen.map(|_| snapshots[0].path.clone());
    CachedRepo { repo, path: dir.root.clone(), snapshots, refs, size_bytes, incomplete_bytes, servable }
}

/// Every model repo in one hub cache (`models--*` folders), sorted by repo id. Repos with no
/// complete snapshot are listed too (a partial download, a corrupted file): their `servable` is
/// `None`.
pub fn scan(cache: &Path) -> Vec<CachedRepo> {
    let Ok(entries) = std::fs::read_dir(cache) else { return Vec::new() };
    let mut repos: Vec<CachedRepo> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let repo = RepoId::from_folder_name(&e.file_name().to_string_lossy())?;
            Some(scan_repo(&RepoDir::new(cache, &repo), repo))
        })
        .collect();
    repos.sort_by(|a, b| a.repo.cmp(&b.repo));
    repos
}

/// [`scan`] over several caches; a repo found in an earlier cache hides the same repo in later
/// ones.
pub fn scan_all(caches: &[PathBuf]) -> Vec<CachedRepo> {
    let mut out: BTreeMap<RepoId, CachedRepo> = BTreeMap::new();
    for cache in caches {
        for repo in scan(cache) {
            out.entry(repo.repo.clone()).or_insert(repo);
        }
    }
    out.into_values().collect()
}

/// What a delete removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// The repo.
    pub repo: RepoId,
    /// The snapshots (commits) removed.
    pub snapshots: Vec<String>,
    /// Bytes freed (blobs no snapshot links any more, and partial downloads when the whole repo
    /// went).
    pub freed_bytes: u64,
    /// The repo's whole folder is gone (no snapshot of it is left).
    pub removed_repo: bool,
}

/// Bytes of the regular files under `dir` (links not followed: each blob counted once).
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.filter_map(|e| e.ok()) {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// The blob names a snapshot's links point at.
fn linked_blobs(snapshot: &Path) -> HashSet<String> {
    files_under(snapshot)
        .iter()
        .filter_map(|f| std::fs::read_link(snapshot.join(f)).ok())
        .filter_map(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// Deletes a repo from `cache`: one revision (a commit, or a branch/tag the refs resolve) and
/// the blobs no other snapshot links, or, with `revision` None, the whole repo (partial
/// downloads included). Deleting the last snapshot removes the whole folder. Whether the model
/// may be deleted (loaded, downloading) is the caller's decision.
pub fn delete(cache: &Path, repo: &RepoId, revision: Option<&str>) -> Result<Deleted> {
    let dir = RepoDir::new(cache, repo);
    let not_installed = || LibraryError::NotInstalled { repo: repo.to_string(), revision: revision.map(String::from) };
    if !dir.root.is_dir() {
        return Err(not_installed());
    }
    let before = scan_repo(&dir, repo.clone());
    let Some(revision) = revision else {
        let freed_bytes = bytes_under(&dir.root);
        std::fs::remove_dir_all(&dir.root).map_err(LibraryError::io(&dir.root))?;
        let _ = std::fs::remove_dir_all(cache.join(".locks").join(dir.folder_name()));
        let snapshots = before.snapshots.iter().map(|s| s.commit.clone()).collect();
        return Ok(Deleted { repo: repo.clone(), snapshots, freed_bytes, removed_repo: true });
    };
    // A snapshot is a commit (one path segment); a ref may be nested (`refs/pr/1`); neither
    // may climb out of the repo's folder.
    let is_commit = |c: &str| valid_revision(c) && !c.contains('/');
    if !valid_revision(revision) {
        return Err(not_installed());
    }
    let commit = if is_commit(revision) && dir.snapshot(revision).is_dir() {
        revision.to_string()
    } else {
        before
            .refs
            .get(revision)
            .cloned()
            .filter(|c| is_commit(c) && dir.snapshot(c).is_dir())
            .ok_or_else(not_installed)?
    };
    if before.snapshots.iter().all(|s| s.commit == commit) {
        return delete(cache, repo, None);
    }
    let snapshot = dir.snapshot(&commit);
    let doomed = linked_blobs(&snapshot);
    std::fs::remove_dir_all(&snapshot).map_err(LibraryError::io(&snapshot))?;
    for (name, c) in &before.refs {
        if *c == commit {
            let _ = std::fs::remove_file(dir.reference(name));
        }
    }
    let kept: HashSet<String> =
        before.snapshots.iter().filter(|s| s.commit != commit).flat_map(|s| linked_blobs(&s.path)).collect();
    let mut freed_bytes = 0;
    for blob in doomed.difference(&kept) {
        let path = dir.blob(blob);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            std::fs::remove_file(&path).map_err(LibraryError::io(&path))?;
            freed_bytes += meta.len();
        }
    }
    Ok(Deleted { repo: repo.clone(), snapshots: vec![commit], freed_bytes, removed_repo: false })
}

/// `relative` from the folder `from` (both under one root), as `../..` steps then the rest.
fn relative_link(from_dir: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from_dir.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part.as_os_str());
    }
    out
}

/// Links each `(file, blob)` into `snapshots/<commit>/` with relative links (as huggingface_hub
/// does, so the cache can be moved), replacing whatever was there.
pub(crate) fn link_snapshot(dir: &RepoDir, commit: &str, files: &[(String, String)]) -> Result<PathBuf> {
    let snapshot = dir.snapshot(commit);
    for (file, blob) in files {
        let link = snapshot.join(file);
        let parent = link.parent().unwrap_or(&snapshot).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(LibraryError::io(&parent))?;
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&link).map_err(LibraryError::io(&link))?,
            Ok(_) => std::fs::remove_file(&link).map_err(LibraryError::io(&link))?,
            Err(_) => {}
        }
        let target = relative_link(&parent, &dir.blob(blob));
        make_link(&target, &dir.blob(blob), &link).map_err(LibraryError::io(&link))?;
    }
    Ok(snapshot)
}

#[cfg(unix)]
fn make_link(relative: &Path, _absolute: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(relative, link)
}

#[cfg(not(unix))]
fn make_link(_relative: &Path, absolute: &Path, link: &Path) -> std::io::Result<()> {
    // huggingface_hub's fallback where links are not allowed: a copy.
    std::fs::copy(absolute, link).map(|_| ())
}

/// Writes `refs/<revision>` = commit (no newline, as huggingface_hub writes it), atomically.
pub(crate) fn write_ref(dir: &RepoDir, revision: &str, commit: &str) -> Result<()> {
    let path = dir.reference(revision);
    let parent = path.parent().unwrap_or(&dir.root).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(LibraryError::io(&parent))?;
    let tmp = parent.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, commit).map_err(LibraryError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(LibraryError::io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> RepoId {
        RepoId::parse("org/model").unwrap()
    }

    /// A snapshot of `files` (name, content) linked to blobs named by content.
    fn put(cache: &Path, commit: &str, files: &[(&str, &str)]) -> RepoDir {
        let dir = RepoDir::new(cache, &repo());
        std::fs::create_dir_all(dir.blobs()).unwrap();
        let mut links = Vec::new();
        for (name, content) in files {
            let blob = format!("blob-{}", content.replace(' ', "_"));
            std::fs::write(dir.blob(&blob), content).unwrap();
            links.push((name.to_string(), blob));
        }
        link_snapshot(&dir, commit, &links).unwrap();
        dir
    }

    #[test]
    fn links_are_relative_into_blobs() {
        let cache = tempfile::tempdir().unwrap();
        let dir = put(cache.path(), "c1", &[("config.json", "{}"), ("sub/t.jinja", "tpl")]);
        let link = std::fs::read_link(dir.snapshot("c1").join("config.json")).unwrap();
        assert_eq!(link, Path::new("../../blobs/blob-{}"));
        let nested = std::fs::read_link(dir.snapshot("c1").join("sub/t.jinja")).unwrap();
        assert_eq!(nested, Path::new("../../../blobs/blob-tpl"));
        assert_eq!(std::fs::read_to_string(dir.snapshot("c1").join("sub/t.jinja")).unwrap(), "tpl");
    }

    #[test]
    fn the_scan_offers_refs_main_when_complete_else_the_newest_complete_snapshot() {
        let cache = tempfile::tempdir().unwrap();
        let dir = put(cache.path(), "old", &[("config.json", "{}"), ("model.safetensors", "w1")]);
        // A newer commit without its weights (a partial copy): not servable.
        put(cache.path(), "new", &[("config.json", "{} ")]);
        write_ref(&dir, "main", "new").unwrap();
        let found = scan(cache.path());
        assert_eq!(found.len(), 1);
        let r = &found[0];
        assert_eq!(r.repo.as_str(), "org/model");
        assert_eq!(r.servable.as_deref(), Some(dir.snapshot("old").as_path()));
        assert_eq!(r.refs.get("main").map(String::as_str), Some("new"));
        assert!(!r.snapshots.iter().find(|s| s.commit == "new").unwrap().complete);
        // Its weights arrive: now main is served.
        put(cache.path(), "new", &[("model.safetensors", "w2")]);
        assert_eq!(scan(cache.path())[0].servable.as_deref(), Some(dir.snapshot("new").as_path()));
        assert_eq!(std::fs::read_to_string(dir.reference("main")).unwrap(), "new", "no newline");
    }

    #[test]
    fn sharded_snapshots_need_every_shard_of_their_index() {
        let cache = tempfile::tempdir().unwrap();
        let index = r#"{"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}"#;
        put(
            cache.path(),
            "c",
            &[("config.json", "{}"), ("model.safetensors.index.json", index), ("model-1.safetensors", "1")],
        );
        assert_eq!(scan(cache.path())[0].servable, None);
        put(cache.path(), "c", &[("model-2.safetensors", "2")]);
        assert!(scan(cache.path())[0].servable.is_some());
        // A dangling link (its blob deleted) is a missing file.
        std::fs::remove_file(RepoDir::new(cache.path(), &repo()).blob("blob-2")).unwrap();
        assert_eq!(scan(cache.path())[0].servable, None);
    }

    #[test]
    fn plain_folders_in_snapshots_count_too() {
        // What other tools (or a copy without links) leave: real files, no blobs.
        let cache = tempfile::tempdir().unwrap();
        let snap = cache.path().join("models--org--model/snapshots/abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        std::fs::write(snap.join("model.safetensors"), "12345").unwrap();
        let r = &scan(cache.path())[0];
        assert_eq!(r.servable.as_deref(), Some(snap.as_path()));
        assert_eq!(r.size_bytes, 7);
    }

    #[test]
    fn sizes_count_each_blob_once_and_partial_downloads_apart() {
        let cache = tempfile::tempdir().unwrap();
        let dir = put(cache.path(), "a", &[("config.json", "{}"), ("model.safetensors", "weights")]);
        put(cache.path(), "b", &[("config.json", "{}"), ("model.safetensors", "weights2")]);
        std::fs::write(dir.incomplete("partial"), "xyz").unwrap();
        let r = &scan(cache.path())[0];
        assert_eq!(r.size_bytes, 2 + 7 + 8);
        assert_eq!(r.incomplete_bytes, 3);
        assert_eq!(r.snapshots.iter().map(|s| s.size_bytes).sum::<u64>(), 2 + 7 + 2 + 8);
    }

    #[test]
    fn deleting_a_revision_keeps_blobs_other_snapshots_link() {
        let cache = tempfile::tempdir().unwrap();
        let dir = put(cache.path(), "a", &[("config.json", "{}"), ("model.safetensors", "weights-a")]);
        put(cache.path(), "b", &[("config.json", "{}"), ("model.safetensors", "weights-bb")]);
        write_ref(&dir, "main", "b").unwrap();
        write_ref(&dir, "v1", "a").unwrap();
        let deleted = delete(cache.path(), &repo(), Some("v1")).unwrap();
        assert_eq!(deleted.snapshots, ["a"]);
        assert_eq!(deleted.freed_bytes, 9, "only weights-a: the config blob is shared");
        assert!(!deleted.removed_repo);
        assert!(dir.blob("blob-{}").is_file() && !dir.blob("blob-weights-a").exists());
        assert!(!dir.reference("v1").exists() && dir.reference("main").exists());
        // The last snapshot takes the folder (and partial downloads) with it.
        std::fs::write(dir.incomplete("x"), "1234").unwrap();
        let deleted = delete(cache.path(), &repo(), Some("main")).unwrap();
        assert!(deleted.removed_repo);
        assert_eq!(deleted.freed_bytes, 2 + 10 + 4 + 1, "config, weights, partial, the ref file");
        assert!(!dir.root.exists());
        assert!(matches!(delete(cache.path(), &repo(), None), Err(LibraryError::NotInstalled { .. })));
    }

    #[test]
    fn unknown_revisions_are_not_installed() {
        let cache = tempfile::tempdir().unwrap();
        put(cache.path(), "a", &[("config.json", "{}")]);
        let e = delete(cache.path(), &repo(), Some("nope")).unwrap_err();
        assert_eq!(e.to_string(), "`org/model` is not in the Hugging Face cache at revision `nope`");
    }

    #[test]
    fn a_revision_cannot_climb_out_of_the_repo() {
        let cache = tempfile::tempdir().unwrap();
        let dir = put(cache.path(), "a", &[("config.json", "{}")]);
        put(cache.path(), "b", &[("config.json", "{} ")]);
        for bad in ["..", "../..", "../../..", "/", "a/../b", "."] {
            assert!(delete(cache.path(), &repo(), Some(bad)).is_err(), "{bad}");
        }
        assert!(dir.snapshot("a").is_dir() && dir.snapshot("b").is_dir() && cache.path().is_dir());
    }
}
