//! The two OS facilities downloads need: free space (checked before a download starts) and an
//! exclusive lock per blob, on the same lock file `huggingface_hub` locks
//! (`<cache>/.locks/models--org--name/<blob>.lock`, `flock`), so two processes — ours or Python's
//! — never write one `.incomplete` file at once.

use std::fs::File;
use std::path::{Path, PathBuf};

/// Bytes free for this user on the file system that holds `path` (or its nearest existing
/// ancestor: the cache may not exist yet).
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    let mut dir = path.to_path_buf();
    while !dir.exists() {
        if !dir.pop() || dir.as_os_str().is_empty() {
            dir = PathBuf::from(".");
            break;
        }
    }
    statvfs_available(&dir)
}

#[cfg(unix)]
fn statvfs_available(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a properly sized out-parameter that
    // statvfs fills before we read it (only on success).
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between Linux and macOS
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(not(unix))]
fn statvfs_available(_dir: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// An exclusive lock held until dropped.
#[derive(Debug)]
pub struct BlobLock {
    _file: File,
}

/// Outcome of trying to lock.
pub enum TryLock {
    /// Ours until dropped.
    Locked(BlobLock),
    /// Another process holds it.
    Busy,
}

/// Takes the lock at `path` (created with its folders) without waiting.
pub fn try_lock(path: &Path) -> std::io::Result<TryLock> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    lock_nonblocking(file)
}

#[cfg(unix)]
fn lock_nonblocking(file: File) -> std::io::Result<TryLock> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; the lock lives as long as the file stays open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(TryLock::Locked(BlobLock { _file: file }));
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        Ok(TryLock::Busy)
    } else {
        Err(err)
    }
}

#[cfg(not(unix))]
fn lock_nonblocking(file: File) -> std::io::Result<TryLock> {
    Ok(TryLock::Locked(BlobLock { _file: file }))
}

/// `<cache>/.locks/models--org--name/<blob>.lock`.
pub fn lock_path(cache: &Path, repo_folder: &str, blob: &str) -> PathBuf {
    cache.join(".locks").join(repo_folder).join(format!("{blob}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_for_folders_that_do_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(&dir.path().join("not/yet/here")).unwrap();
        assert!(free > 0);
    }

    #[test]
    fn a_blob_lock_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "models--a--b", "abc");
        let TryLock::Locked(first) = try_lock(&path).unwrap() else { panic!("first lock") };
        assert!(matches!(try_lock(&path).unwrap(), TryLock::Busy));
        drop(first);
        assert!(matches!(try_lock(&path).unwrap(), TryLock::Locked(_)));
    }
}
