//! The Hub's HTTP API, as `huggingface_hub` speaks it: model info with file metadata
//! (`/api/models/{repo}/revision/{rev}?blobs=true`), search (`/api/models?search=…`) and file
//! downloads (`/{repo}/resolve/{rev}/{file}`, redirected to a CDN for LFS files). Errors are
//! read from the Hub's `X-Error-Code` header where it sends one; 429, 5xx and network failures
//! are retried with exponential backoff.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, RANGE, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::download::RetryPolicy;
use crate::error::{LibraryError, Result};
use crate::repo::RepoId;

/// The Hub's own error classification header.
const ERROR_CODE: &str = "x-error-code";
const ERROR_MESSAGE: &str = "x-error-message";

/// A file in a model info's `siblings` (with `blobs=true`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    /// The git blob id (for an LFS file, of its pointer).
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

/// An LFS file's real content.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Lfs {
    pub sha256: String,
    pub size: u64,
}

/// `gated` is `false`, `"auto"` or `"manual"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Gated {
    Flag(bool),
    Mode(String),
}

/// Whether a `gated` field says the repo is gated.
pub(crate) fn is_gated(gated: &Option<Gated>) -> bool {
    match gated {
        Some(Gated::Flag(b)) => *b,
        Some(Gated::Mode(m)) => !m.is_empty() && m != "false",
        None => false,
    }
}

/// `GET /api/models/{repo}[/revision/{rev}]`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ModelInfo {
    /// The commit the revision resolved to.
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
    #[serde(default)]
    pub gated: Option<Gated>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub downloads: Option<u64>,
    #[serde(default)]
    pub likes: Option<u64>,
    #[serde(default, rename = "lastModified")]
    pub last_modified: Option<String>,
}

/// One `GET /api/models?search=…` hit.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SearchHit {
    pub id: String,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub downloads: Option<u64>,
    #[serde(default)]
    pub likes: Option<u64>,
    #[serde(default, rename = "lastModified")]
    pub last_modified: Option<String>,
    #[serde(default, rename = "createdAt")]
    pub created_at: Option<String>,
    #[serde(default)]
    pub pipeline_tag: Option<String>,
    #[serde(default)]
    pub library_name: Option<String>,
    #[serde(default)]
    pub gated: Option<Gated>,
}

/// What a request was about, for its errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    pub repo: &'a RepoId,
    pub revision: &'a str,
    pub file: Option<&'a str>,
}

/// A client for one Hub endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    client: reqwest::Client,
    endpoint: Url,
    token: Option<SecretString>,
    pub retry: RetryPolicy,
}

/// Whether a status is worth retrying.
pub(crate) fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
}

impl Hub {
    pub fn new(endpoint: &str, token: Option<SecretString>, retry: RetryPolicy) -> Result<Hub> {
        let bad = |message: String| LibraryError::Protocol { url: endpoint.to_string(), message };
        let endpoint = Url::parse(&format!("{endpoint}/")).map_err(|e| bad(format!("HF_ENDPOINT: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A stalled transfer (no byte for this long) is retried from where it stopped.
            .read_timeout(retry.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(Hub { client, endpoint, token, retry })
    }

    pub fn token_sent(&self) -> bool {
        self.token.is_some()
    }

    /// `{endpoint}/{segments…}` with each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.endpoint.clone();
        {
            let mut path = url.path_segments_mut().expect("http(s) URLs have paths");
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        url
    }

    /// `/api/models/{repo}/revision/{revision}?blobs=true`.
    pub fn info_url(&self, repo: &RepoId, revision: &str) -> Url {
        let mut segments: Vec<&str> = vec!["api", "models"];
        segments.extend(repo.segments());
        segments.extend(["revision", revision]);
        let mut url = self.url(&segments);
        url.query_pairs_mut().append_pair("blobs", "true");
        url
    }

    /// `/{repo}/resolve/{revision}/{file}` (the file's own `/`s kept).
    pub fn resolve_url(&self, repo: &RepoId, revision: &str, file: &str) -> Url {
        let mut segments: Vec<&str> = repo.segments().collect();
        segments.extend(["resolve", revision]);
        segments.extend(file.split('/'));
        self.url(&segments)
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(method, url)
            .header(USER_AGENT, concat!("mlx-manager/", env!("CARGO_PKG_VERSION"), "; hf_hub/compatible"));
        if let Some(token) = &self.token {
            // reqwest drops it on a redirect to another host (the CDN): only the Hub sees it.
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
        }
        request
    }

    /// One request, retried on 429/5xx and network errors; a success or a typed error.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        range_from: Option<u64>,
        about: Option<About<'_>>,
    ) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            let mut request = self.request(method.clone(), url.clone());
            if let Some(from) = range_from.filter(|f| *f > 0) {
                request = request.header(RANGE, format!("bytes={from}-"));
            }
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if retryable(response.status()) => {
                    let wait = retry_after(response.headers());
                    (self.status_error(&url, response, about), wait)
                }
                Ok(response) => return Err(self.status_error(&url, response, about)),
                Err(e) => (network_error(&url, &e), None),
            };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(failure.0);
            }
            let delay = self.retry.delay(attempt, failure.1);
            tracing::warn!(url = %url, attempt, delay_ms = delay.as_millis() as u64, error = %failure.0, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// A JSON answer.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, url: Url, about: Option<About<'_>>) -> Result<T> {
        let response = self.send(Method::GET, url.clone(), None, about).await?;
        let bytes = response.bytes().await.map_err(|e| network_error(&url, &e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LibraryError::Protocol { url: url.to_string(), message: e.to_string() })
    }

    pub async fn model_info(&self, repo: &RepoId, revision: &str) -> Result<ModelInfo> {
        let about = About { repo, revision, file: None };
        self.json(self.info_url(repo, revision), Some(about)).await
    }

    /// A small file's bytes (config.json).
    pub async fn small_file(&self, repo: &RepoId, revision: &str, file: &str) -> Result<Vec<u8>> {
        let url = self.resolve_url(repo, revision, file);
        let about = About { repo, revision, file: Some(file) };
        let response = self.send(Method::GET, url.clone(), None, Some(about)).await?;
        Ok(response.bytes().await.map_err(|e| network_error(&url, &e))?.to_vec())
    }

    /// Whether the file can be read (a `HEAD`, redirects followed): gated repos answer their
    /// model info to anyone but their files only to accepted tokens.
    pub async fn probe(&self, repo: &RepoId, revision: &str, file: &str) -> Result<()> {
        let url = self.resolve_url(repo, revision, file);
        self.send(Method::HEAD, url, None, Some(About { repo, revision, file: Some(file) })).await.map(|_| ())
    }

    pub async fn search(&self, params: &[(&str, String)]) -> Result<Vec<SearchHit>> {
        let mut url = self.url(&["api", "models"]);
        url.query_pairs_mut().extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        self.json(url, None).await
    }

    /// The typed error for an error answer.
    pub fn status_error(&self, url: &Url, response: reqwest::Response, about: Option<About<'_>>) -> LibraryError {
        error_for(url, response.status(), response.headers(), about, self.token_sent())
    }
}

/// `Retry-After` in seconds, if the Hub sent one.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

pub(crate) fn network_error(url: &Url, e: &reqwest::Error) -> LibraryError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    LibraryError::Network { url: strip_query(url), message }
}

/// The URL without its query (a CDN's signed URL carries credentials there).
fn strip_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// Reads the Hub's `X-Error-Code` (as huggingface_hub's `hf_raise_for_status` does), else the
/// status.
pub(crate) fn error_for(
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    about: Option<About<'_>>,
    token_sent: bool,
) -> LibraryError {
    let code = headers.get(ERROR_CODE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let message = headers.get(ERROR_MESSAGE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let hub_status =
        || LibraryError::HubStatus { url: strip_query(url), status: status.as_u16(), message: message.clone() };
    let Some(about) = about else { return hub_status() };
    let repo = about.repo.to_string();
    match (code, status.as_u16()) {
        ("GatedRepo", _) => LibraryError::AccessDenied { repo, gated: true, token_sent },
        ("RepoNotFound", _) => LibraryError::RepoNotFound { repo, token_sent },
        ("RevisionNotFound", _) => LibraryError::RevisionNotFound { repo, revision: about.revision.to_string() },
        ("EntryNotFound", _) => LibraryError::EntryNotFound {
            repo,
            revision: about.revision.to_string(),
            file: about.file.unwrap_or_default().to_string(),
        },
        (_, 401 | 403) => LibraryError::AccessDenied { repo, gated: false, token_sent },
        (_, 404) => match about.file {
            Some(file) => LibraryError::EntryNotFound { repo, revision: about.revision.to_string(), file: file.into() },
            None => LibraryError::RepoNotFound { repo, token_sent },
        },
        _ => hub_status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn hub() -> Hub {
        Hub::new("http://127.0.0.1:1/mirror", None, RetryPolicy::default()).unwrap()
    }

    #[test]
    fn urls_encode_each_segment_and_keep_the_endpoint_path() {
        let repo = RepoId::parse("org/name").unwrap();
        assert_eq!(
            hub().info_url(&repo, "refs/pr/1").as_str(),
            "http://127.0.0.1:1/mirror/api/models/org/name/revision/refs%2Fpr%2F1?blobs=true"
        );
        assert_eq!(
            hub().resolve_url(&repo, "main", "sub dir/a#b.json").as_str(),
            "http://127.0.0.1:1/mirror/org/name/resolve/main/sub%20dir/a%23b.json"
        );
    }

    #[test]
    fn hub_error_codes_become_typed_errors() {
        let repo = RepoId::parse("org/name").unwrap();
        let about = About { repo: &repo, revision: "main", file: Some("config.json") };
        let url = Url::parse("http://h/x?sig=secret").unwrap();
        let with = |code: &str| {
            let mut h = HeaderMap::new();
            h.insert(ERROR_CODE, HeaderValue::from_str(code).unwrap());
            h
        };
        let e = error_for(&url, StatusCode::UNAUTHORIZED, &with("GatedRepo"), Some(about), false);
        assert!(matches!(e, LibraryError::AccessDenied { gated: true, token_sent: false, .. }));
        assert!(e.to_string().contains("set HF_TOKEN"), "{e}");
        let e = error_for(&url, StatusCode::UNAUTHORIZED, &with("RepoNotFound"), Some(about), false);
        assert!(matches!(e, LibraryError::RepoNotFound { .. }) && e.to_string().contains("HF_TOKEN"));
        let e = error_for(&url, StatusCode::NOT_FOUND, &with("RevisionNotFound"), Some(about), true);
        assert!(matches!(e, LibraryError::RevisionNotFound { .. }));
        let e = error_for(&url, StatusCode::NOT_FOUND, &HeaderMap::new(), Some(about), true);
        assert!(matches!(e, LibraryError::EntryNotFound { .. }));
        let e = error_for(&url, StatusCode::FORBIDDEN, &HeaderMap::new(), Some(about), true);
        assert!(matches!(e, LibraryError::AccessDenied { gated: false, token_sent: true, .. }));
        let e = error_for(&url, StatusCode::BAD_GATEWAY, &HeaderMap::new(), Some(about), true);
        assert!(!e.to_string().contains("secret"), "signed URLs are not shown: {e}");
    }
}
