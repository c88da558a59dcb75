//! The library's one error type.

use std::path::PathBuf;

/// Results of this crate.
pub type Result<T, E = LibraryError> = std::result::Result<T, E>;

/// Everything the library can fail with. Each variant says what the user can do about it; the
/// server maps them to HTTP statuses one by one.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// Not `org/name` (or `name`) as the Hub spells repo ids.
    #[error("`{0}` is not a Hugging Face repo id (expected `org/name`, optionally `@revision`)")]
    InvalidRepoId(String),
    /// No cache directory could be derived from the environment.
    #[error("no Hugging Face cache directory: set HF_HUB_CACHE, HF_HOME or HOME")]
    NoCacheDir,
    /// `HF_HUB_OFFLINE` is set: nothing may be fetched.
    #[error("HF_HUB_OFFLINE is set, so the Hugging Face Hub is not contacted; unset it to search or download")]
    Offline,
    /// The Hub refused access: a gated or private repo, and no token or one without access.
    #[error("{}", access_denied(repo, *gated, *token_sent))]
    AccessDenied {
        /// The repo.
        repo: String,
        /// The Hub said the repo is gated (its terms must be accepted on its page).
        gated: bool,
        /// Whether a token was sent.
        token_sent: bool,
    },
    /// No such repo (or a private one the token cannot see).
    #[error("repository `{repo}` was not found on the Hub{}", if *token_sent { "" } else { " (if it is private, set HF_TOKEN or log in with `hf auth login`)" })]
    RepoNotFound {
        /// The repo.
        repo: String,
        /// Whether a token was sent.
        token_sent: bool,
    },
    /// The repo exists; the branch, tag or commit does not.
    #[error("revision `{revision}` was not found in `{repo}`")]
    RevisionNotFound {
        /// The repo.
        repo: String,
        /// The revision asked for.
        revision: String,
    },
    /// A file the model info listed is missing at that commit.
    #[error("`{file}` was not found in `{repo}` at {revision}")]
    EntryNotFound {
        /// The repo.
        repo: String,
        /// The commit.
        revision: String,
        /// The file.
        file: String,
    },
    /// The repo has no `config.json` or no safetensors weights: nothing this app could serve.
    #[error("`{repo}` is not an MLX/safetensors model: it has {}", if *has_config { "no model*.safetensors weights" } else { "no config.json" })]
    NotAModel {
        /// The repo.
        repo: String,
        /// Whether it has a config.json.
        has_config: bool,
    },
    /// Not enough free space where the cache is.
    #[error("not enough disk space in {}: the download needs {needed_bytes} more bytes and {free_bytes} are free", path.display())]
    InsufficientDisk {
        /// The cache directory whose file system is full.
        path: PathBuf,
        /// Bytes still to download.
        needed_bytes: u64,
        /// Bytes free for this user.
        free_bytes: u64,
    },
    /// A file's content does not match the hash the Hub published for it. The partial file was
    /// deleted and nothing was linked.
    #[error("`{file}` failed verification: the Hub published {algorithm} {expected}, the downloaded bytes hash to {actual}; the file was discarded")]
    ChecksumMismatch {
        /// The file (path in the repo).
        file: String,
        /// `sha256` (LFS files) or `git-sha1` (regular files).
        algorithm: &'static str,
        /// The published hash.
        expected: String,
        /// The hash of what arrived.
        actual: String,
    },
    /// The Hub kept answering an error status (after retries, for 429/5xx).
    #[error("the Hub answered {status} for {url}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    HubStatus {
        /// The URL asked (no credentials in it).
        url: String,
        /// The status.
        status: u16,
        /// The Hub's `X-Error-Message`, if any.
        message: String,
    },
    /// The Hub could not be reached, or the connection kept failing (after retries).
    #[error("the Hub could not be reached at {url}: {message}")]
    Network {
        /// The URL asked.
        url: String,
        /// What failed.
        message: String,
    },
    /// The Hub's answer made no sense (bad JSON, a range it was not asked for, a wrong ETag).
    #[error("unexpected answer from the Hub for {url}: {message}")]
    Protocol {
        /// The URL asked.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// Another process (mlx-manager or huggingface_hub) holds the lock on a blob being downloaded.
    #[error("another process is downloading `{file}` into the same cache (lock {})", lock.display())]
    Busy {
        /// The file.
        file: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// No download with this id (finished ones are kept until cancelled/dismissed).
    #[error("no download with id `{0}`")]
    NoSuchDownload(String),
    /// The repo (or that revision of it) is not in the cache.
    #[error("`{repo}` is not in the Hugging Face cache{}", revision.as_deref().map(|r| format!(" at revision `{r}`")).unwrap_or_default())]
    NotInstalled {
        /// The repo.
        repo: String,
        /// The revision asked for, if any.
        revision: Option<String>,
    },
}

fn access_denied(repo: &str, gated: bool, token_sent: bool) -> String {
    match (gated, token_sent) {
        (true, false) => format!(
            "`{repo}` is a gated model: accept its terms on its Hub page, then set HF_TOKEN (or log in with `hf auth login`) to a token of that account"
        ),
        (true, true) => format!(
            "your Hugging Face token has no access to the gated model `{repo}`: accept its terms on its Hub page with that account"
        ),
        (false, false) => {
            format!("`{repo}` needs authentication: set HF_TOKEN (or log in with `hf auth login`) to a token with access")
        }
        (false, true) => format!("your Hugging Face token has no access to `{repo}`"),
    }
}

impl LibraryError {
    /// A stable snake_case code (the same the server's problem documents use).
    pub fn code(&self) -> &'static str {
        match self {
            LibraryError::InvalidRepoId(_) => "invalid_repo_id",
            LibraryError::NoCacheDir => "no_cache_dir",
            LibraryError::Offline => "hub_offline",
            LibraryError::AccessDenied { .. } => "hub_access_denied",
            LibraryError::RepoNotFound { .. } => "repo_not_found",
            LibraryError::RevisionNotFound { .. } => "revision_not_found",
            LibraryError::EntryNotFound { .. } => "file_not_found",
            LibraryError::NotAModel { .. } => "not_a_model",
            LibraryError::InsufficientDisk { .. } => "insufficient_disk_space",
            LibraryError::ChecksumMismatch { .. } => "checksum_mismatch",
            LibraryError::HubStatus { .. } => "hub_error",
            LibraryError::Network { .. } => "hub_unreachable",
            LibraryError::Protocol { .. } => "hub_protocol_error",
            LibraryError::Io { .. } => "io_error",
            LibraryError::Busy { .. } => "download_busy",
            LibraryError::NoSuchDownload(_) => "download_not_found",
            LibraryError::NotInstalled { .. } => "model_not_installed",
        }
    }

    /// The code and message, for a download's status (errors are not `Clone`).
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo { code: self.code().to_string(), message: self.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LibraryError {
        let path = path.into();
        move |source| LibraryError::Io { path, source }
    }
}

/// An error as a download's status carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    /// [`LibraryError::code`].
    pub code: String,
    /// The message shown to the user.
    pub message: String,
}
