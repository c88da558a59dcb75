//! Moving bytes: each blob grows in `blobs/<name>.incomplete`, resumed with an HTTP Range from
//! its length (whatever stopped it: a pause, a cancel, a dropped connection, a killed process),
//! hashed as it arrives, and renamed to `blobs/<name>` only when its hash is the one the Hub
//! published. Several blobs download at once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use reqwest::{Method, StatusCode};
use sha1::Digest;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::cache::RepoDir;
use crate::disk;
use crate::download::Shared;
use crate::error::{LibraryError, Result};
use crate::hub::{network_error, About};
use crate::repo::RepoId;

/// How a blob's content is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// An LFS file: the sha256 of its content (its name in `blobs/`).
    Sha256(String),
    /// A regular git file: its git blob id, `sha1("blob {len}\0" + content)`.
    GitSha1(String),
}

impl Check {
    fn expected(&self) -> &str {
        match self {
            Check::Sha256(h) | Check::GitSha1(h) => h,
        }
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Check::Sha256(_) => "sha256",
            Check::GitSha1(_) => "git-sha1",
        }
    }
}

/// A running hash of the bytes written so far.
enum Hasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl Hasher {
    fn new(check: &Check, size: u64) -> Hasher {
        match check {
            Check::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
            Check::GitSha1(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Hasher::GitSha1(h)
            }
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::GitSha1(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::GitSha1(h) => hex::encode(h.finalize()),
        }
    }
}

/// One blob to fetch (files with the same content share one).
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Its name in `blobs/` (the sha256 or git blob id).
    pub blob: String,
    /// A file that has this content (the URL to fetch it from).
    pub file: String,
    pub size: u64,
    pub check: Check,
}

/// A job's state, as the status reports it.
pub(crate) const PENDING: u8 = 0;
pub(crate) const DOWNLOADING: u8 = 1;
pub(crate) const DONE: u8 = 2;
pub(crate) const FAILED: u8 = 3;

/// Progress of one job, shared with the status publisher.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    /// Bytes of the blob on disk (kept partial bytes included).
    pub done: AtomicU64,
    /// Bytes received over the network by this process (for the rate).
    pub fetched: AtomicU64,
    pub state: AtomicU8,
}

/// What [`fetch_all`] was asked to fetch.
pub(crate) struct Work<'a> {
    pub repo: &'a RepoId,
    pub commit: &'a str,
    pub dir: &'a RepoDir,
    pub jobs: &'a [Job],
    pub counters: &'a [Arc<Counter>],
}

/// How a fetch ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Every blob is in `blobs/`, verified.
    All,
    /// Stopped by `stop` (pause or cancel); partial blobs kept.
    Stopped,
}

/// Fetches every job, `parallel` at a time. The first failure stops the others (their partial
/// bytes are kept) and is returned.
pub(crate) async fn fetch_all(shared: &Shared, work: &Work<'_>, stop: &CancellationToken) -> Result<Fetched> {
    let failed = stop.child_token();
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    let mut first_error = None;
    let mut all_done = true;
    loop {
        while running.len() < shared.options.parallel_files.max(1) && next < work.jobs.len() && !failed.is_cancelled() {
            running.push(fetch_one(shared, work, next, &failed));
            next += 1;
        }
        let Some(result) = running.next().await else { break };
        match result {
            Ok(Fetched::All) => {}
            Ok(Fetched::Stopped) => all_done = false,
            Err(e) => {
                all_done = false;
                failed.cancel();
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None if all_done && next == work.jobs.len() => Ok(Fetched::All),
        None => Ok(Fetched::Stopped),
    }
}

async fn fetch_one(shared: &Shared, work: &Work<'_>, i: usize, stop: &CancellationToken) -> Result<Fetched> {
    let counter = &work.counters[i];
    let result = fetch_blob(shared, work, &work.jobs[i], counter, stop).await;
    let state = match &result {
        Ok(Fetched::All) => DONE,
        Ok(Fetched::Stopped) => PENDING,
        Err(_) => FAILED,
    };
    counter.state.store(state, Ordering::Relaxed);
    result
}

fn len_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Hashes the first `len` bytes of a partial file (a resumed download's earlier bytes).
async fn hash_prefix(path: &Path, check: &Check, size: u64, len: u64) -> Result<Hasher> {
    let path = path.to_path_buf();
    let check = check.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut hasher = Hasher::new(&check, size);
        let file = std::fs::File::open(&path).map_err(LibraryError::io(&path))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file).take(len);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(LibraryError::io(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher)
    })
    .await
    .map_err(|e| LibraryError::Io { path: Default::default(), source: std::io::Error::other(e) })?
}

/// One blob: already there, or fetched from where its `.incomplete` stops, verified, renamed.
async fn fetch_blob(
    shared: &Shared,
    work: &Work<'_>,
    job: &Job,
    counter: &Counter,
    stop: &CancellationToken,
) -> Result<Fetched> {
    let dir = work.dir;
    let blob = dir.blob(&job.blob);
    if len_of(&blob) == Some(job.size) {
        counter.done.store(job.size, Ordering::Relaxed);
        return Ok(Fetched::All);
    }
    let lock_path = disk::lock_path(&dir.cache, &dir.folder_name(), &job.blob);
    let _lock = match disk::try_lock(&lock_path).map_err(LibraryError::io(&lock_path))? {
        disk::TryLock::Locked(lock) => lock,
        disk::TryLock::Busy => return Err(LibraryError::Busy { file: job.file.clone(), lock: lock_path }),
    };
    // Another process may have finished it while we waited for nothing.
    if len_of(&blob) == Some(job.size) {
        counter.done.store(job.size, Ordering::Relaxed);
        return Ok(Fetched::All);
    }
    let blobs = dir.blobs();
    tokio::fs::create_dir_all(&blobs).await.map_err(LibraryError::io(&blobs))?;
    let incomplete = dir.incomplete(&job.blob);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&incomplete)
        .await
        .map_err(LibraryError::io(&incomplete))?;
    let mut written = file.metadata().await.map_err(LibraryError::io(&incomplete))?.len();
    if written > job.size {
        file.set_len(0).await.map_err(LibraryError::io(&incomplete))?;
        written = 0;
    }
    let mut hasher = if written > 0 {
        hash_prefix(&incomplete, &job.check, job.size, written).await?
    } else {
        Hasher::new(&job.check, job.size)
    };
    seek_to(&mut file, written).await.map_err(LibraryError::io(&incomplete))?;
    // Writes go out in 1 MiB pieces (a network chunk is a few KiB). Whatever a kill loses from
    // the buffer is simply not in the file: its length is still what is on disk, and a resume
    // re-hashes exactly that.
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    counter.done.store(written, Ordering::Relaxed);
    counter.state.store(DOWNLOADING, Ordering::Relaxed);

    let url = shared.hub.resolve_url(work.repo, work.commit, &job.file);
    let about = About { repo: work.repo, revision: work.commit, file: Some(&job.file) };
    let retry = &shared.hub.retry;
    let mut failures = 0;
    while written < job.size {
        let response = tokio::select! {
            biased;
            _ = stop.cancelled() => {
                file.flush().await.map_err(LibraryError::io(&incomplete))?;
                return Ok(Fetched::Stopped);
            }
            r = shared.hub.send(Method::GET, url.clone(), Some(written), Some(about)) => r?,
        };
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let start = content_range_start(response.headers());
                if start != Some(written) {
                    return Err(LibraryError::Protocol {
                        url: url.to_string(),
                        message: format!("asked for bytes from {written}, got a range starting at {start:?}"),
                    });
                }
            }
            _ if written > 0 => {
                // The server ignored the range: start over.
                tracing::debug!(file = %job.file, "no range support; restarting the file");
                file.flush().await.map_err(LibraryError::io(&incomplete))?;
                file.get_mut().set_len(0).await.map_err(LibraryError::io(&incomplete))?;
                seek_to(file.get_mut(), 0).await.map_err(LibraryError::io(&incomplete))?;
                written = 0;
                hasher = Hasher::new(&job.check, job.size);
                counter.done.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
        let mut body = response.bytes_stream();
        let mut progressed = false;
        let broke = loop {
            if stop.is_cancelled() {
                file.flush().await.map_err(LibraryError::io(&incomplete))?;
                return Ok(Fetched::Stopped);
            }
            let chunk = match body.next().now_or_never() {
                Some(chunk) => chunk,
                None => {
                    // About to wait on the network: what arrived goes to disk first, so a stall,
                    // a pause or a kill keeps it.
                    file.flush().await.map_err(LibraryError::io(&incomplete))?;
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return Ok(Fetched::Stopped),
                        chunk = body.next() => chunk,
                    }
                }
            };
            match chunk {
                Some(Ok(bytes)) => {
                    if written + bytes.len() as u64 > job.size {
                        drop(file);
                        let _ = tokio::fs::remove_file(&incomplete).await;
                        return Err(LibraryError::Protocol {
                            url: url.to_string(),
                            message: format!("`{}` is longer than the {} bytes the Hub listed", job.file, job.size),
                        });
                    }
                    file.write_all(&bytes).await.map_err(LibraryError::io(&incomplete))?;
                    hasher.update(&bytes);
                    written += bytes.len() as u64;
                    progressed = true;
                    counter.done.store(written, Ordering::Relaxed);
                    counter.fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Some(Err(e)) => break Some(network_error(&url, &e)),
                None if written < job.size => {
                    break Some(LibraryError::Network {
                        url: url.to_string(),
                        message: format!("the connection closed at byte {written} of {}", job.size),
                    })
                }
                None => break None,
            }
        };
        if let Some(e) = broke {
            // A dropped or stalled connection: go on from the last byte written.
            failures = if progressed { 1 } else { failures + 1 };
            if failures >= retry.attempts {
                file.flush().await.map_err(LibraryError::io(&incomplete))?;
                return Err(e);
            }
            let delay = retry.delay(failures, None);
            tracing::warn!(file = %job.file, at = written, delay_ms = delay.as_millis() as u64, error = %e, "transfer interrupted; resuming");
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
    file.flush().await.map_err(LibraryError::io(&incomplete))?;
    file.get_ref().sync_all().await.map_err(LibraryError::io(&incomplete))?;
    drop(file);
    let actual = hasher.finish();
    if actual != job.check.expected() {
        let _ = tokio::fs::remove_file(&incomplete).await;
        counter.done.store(0, Ordering::Relaxed);
        return Err(LibraryError::ChecksumMismatch {
            file: job.file.clone(),
            algorithm: job.check.algorithm(),
            expected: job.check.expected().to_string(),
            actual,
        });
    }
    tokio::fs::rename(&incomplete, &blob).await.map_err(LibraryError::io(&blob))?;
    Ok(Fetched::All)
}

/// `Content-Range: bytes START-END/SIZE` → START.
fn content_range_start(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    value.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// Seeks a tokio file to an absolute offset.
async fn seek_to(file: &mut tokio::fs::File, offset: u64) -> std::io::Result<()> {
    use tokio::io::AsyncSeekExt;
    file.seek(std::io::SeekFrom::Start(offset)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_ids_are_sha1_of_the_header_and_content() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = Hasher::new(&Check::GitSha1(String::new()), 6);
        h.update(b"hello\n");
        assert_eq!(h.finish(), "ce013625030ba8dba906f756967f9e9ca394464a");
        let mut h = Hasher::new(&Check::Sha256(String::new()), 0);
        h.update(b"abc");
        assert_eq!(h.finish(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn content_ranges_are_read() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
    }
}
