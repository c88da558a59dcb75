//! The Hugging Face model library: what is in the local Hugging Face cache, what the Hub offers,
//! and getting a model from one to the other — resumable, verified, and laid out exactly as
//! `huggingface_hub` lays it out, so mlx-lm, transformers and LM Studio's importer find our
//! downloads and we find theirs.
//!
//! Why a crate of its own: the CLI (`pull`, `models`, `rm`), the server's admin routes and the
//! desktop shell all need the same cache layout, scan, search and downloads, and none of that
//! needs MLX, axum or SQLite. Keeping it here keeps the engine out of the network and the server
//! out of file layouts. What the engine knows (which `model_type`s it runs, whether a model is
//! loaded) comes in from the caller, so this crate never depends on the engine.
//!
//! ```text
//! HubConfig::from_env()  --Library::new-->  Library
//!   search(query, supported)        GET {endpoint}/api/models?search=… (+ each repo's files and config.json)
//!   start(repo, revision)           plan: model info → files a model needs → disk space → spawn
//!     ├─ pause / resume / cancel    per download, over a control channel
//!     └─ watch(id)                  DownloadStatus snapshots (bytes, rate, ETA, files)
//!   installed() / delete(repo)      scan / remove under <cache>/models--org--name/
//! ```
//!
//! The cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`):
//!
//! ```text
//! models--org--name/
//!   blobs/<sha256 or git sha1>            file contents, named by the Hub's ETag
//!   blobs/<…>.incomplete                  a transfer in progress (resumed with HTTP Range)
//!   snapshots/<commit>/<file> -> ../../blobs/<…>   relative links, made only once every file is verified
//!   refs/<branch or tag>                  the commit it resolved to (no newline)
//! ```
#![deny(missing_docs)]

mod cache;
mod disk;
mod download;
mod env;
mod error;
mod fetch;
mod hub;
mod repo;
mod search;
mod select;

pub use cache::{delete, scan, scan_all, CachedRepo, Deleted, Snapshot};
pub use download::{
    DownloadOptions, DownloadState, DownloadStatus, FileState, FileStatus, Installed, Library, RetryPolicy,
};
pub use env::{hub_dirs, HubConfig};
pub use error::{ErrorInfo, LibraryError, Result};
pub use repo::{ModelRef, RepoId};
pub use search::{ModelSummary, Quantization, SearchQuery, SearchResult, SearchSort};
pub use select::is_model_file;
