//! Where the cache is and how to reach the Hub, read from the environment exactly as
//! `huggingface_hub` reads it (so both agree on one cache and one token).

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::error::{LibraryError, Result};

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How to reach the Hub and where the cache lives.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The Hub's base URL (`HF_ENDPOINT`; a mirror or a test server), without a trailing `/`.
    pub endpoint: String,
    /// Sent as `Authorization: Bearer` to the endpoint only (`HF_TOKEN`, else the token file).
    pub token: Option<SecretString>,
    /// `HF_HUB_OFFLINE`: search and downloads fail with [`LibraryError::Offline`]; the cache
    /// still works.
    pub offline: bool,
    /// Where downloads go (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
}

/// Values huggingface_hub treats as true.
fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// `~` and `$VAR` are expanded by huggingface_hub; the shell has normally done so already, so
/// only a leading `~/` is handled here.
fn expand(path: String, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
fn hf_home(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let home = non_empty(var("HOME")).map(PathBuf::from);
    if let Some(hf) = non_empty(var("HF_HOME")) {
        return Some(expand(hf, home.as_deref()));
    }
    let cache = non_empty(var("XDG_CACHE_HOME"))
        .map(|c| expand(c, home.as_deref()))
        .or_else(|| home.as_ref().map(|h| h.join(".cache")))?;
    Some(cache.join("huggingface"))
}

/// The cache downloads go to.
fn hub_cache(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let home = non_empty(var("HOME")).map(PathBuf::from);
    non_empty(var("HF_HUB_CACHE"))
        .or_else(|| non_empty(var("HUGGINGFACE_HUB_CACHE")))
        .map(|p| expand(p, home.as_deref()))
        .or_else(|| hf_home(var).map(|h| h.join("hub")))
}

impl HubConfig {
    /// From the process environment: `HF_ENDPOINT`, `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`, or
    /// the token file at `HF_TOKEN_PATH` / `$HF_HOME/token`), `HF_HUB_OFFLINE` (or
    /// `TRANSFORMERS_OFFLINE`), and the cache directory.
    pub fn from_env() -> Result<HubConfig> {
        HubConfig::from_vars(&|name| std::env::var(name).ok())
    }

    /// As [`HubConfig::from_env`] over any variable lookup (tests pass a map).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<HubConfig> {
        let cache_dir = hub_cache(var).ok_or(LibraryError::NoCacheDir)?;
        let endpoint = non_empty(var("HF_ENDPOINT")).unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let offline = non_empty(var("HF_HUB_OFFLINE")).or_else(|| non_empty(var("TRANSFORMERS_OFFLINE")));
        let offline = offline.is_some_and(|v| truthy(&v));
        let clean = |t: String| Some(t.replace(['\r', '\n'], "").trim().to_string()).filter(|t| !t.is_empty());
        let token = non_empty(var("HF_TOKEN"))
            .or_else(|| non_empty(var("HUGGING_FACE_HUB_TOKEN")))
            .and_then(clean)
            .or_else(|| {
                let home = non_empty(var("HOME")).map(PathBuf::from);
                let path = non_empty(var("HF_TOKEN_PATH"))
                    .map(|p| expand(p, home.as_deref()))
                    .or_else(|| hf_home(var).map(|h| h.join("token")))?;
                std::fs::read_to_string(path).ok().and_then(clean)
            })
            .map(SecretString::from);
        Ok(HubConfig { endpoint, token, offline, cache_dir })
    }
}

/// The caches to scan for models: the one downloads go to, then `~/.cache/huggingface/hub` when
/// that is a different folder (models an older setup left there stay visible).
pub fn hub_dirs() -> Vec<PathBuf> {
    hub_dirs_from(&|name| std::env::var(name).ok())
}

pub(crate) fn hub_dirs_from(var: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = hub_cache(var).into_iter().collect();
    if let Some(home) = non_empty(var("HOME")) {
        let legacy = PathBuf::from(home).join(".cache/huggingface/hub");
        if !dirs.contains(&legacy) {
            dirs.push(legacy);
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> HubConfig {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        HubConfig::from_vars(&|name| map.get(name).cloned()).unwrap()
    }

    #[test]
    fn the_cache_is_found_where_huggingface_hub_looks() {
        assert_eq!(config(&[("HOME", "/h")]).cache_dir, Path::new("/h/.cache/huggingface/hub"));
        assert_eq!(config(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]).cache_dir, Path::new("/x/huggingface/hub"));
        assert_eq!(config(&[("HOME", "/h"), ("HF_HOME", "/hf")]).cache_dir, Path::new("/hf/hub"));
        assert_eq!(config(&[("HOME", "/h"), ("HF_HOME", "~/hf")]).cache_dir, Path::new("/h/hf/hub"));
        assert_eq!(
            config(&[("HOME", "/h"), ("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/legacy")]).cache_dir,
            Path::new("/legacy")
        );
        assert_eq!(
            config(&[("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/legacy"), ("HF_HUB_CACHE", "/c")]).cache_dir,
            Path::new("/c")
        );
        let none: HashMap<String, String> = HashMap::new();
        assert!(matches!(HubConfig::from_vars(&|n| none.get(n).cloned()), Err(LibraryError::NoCacheDir)));
    }

    #[test]
    fn scans_also_cover_the_default_cache() {
        let map: HashMap<&str, &str> = [("HOME", "/h"), ("HF_HOME", "/hf")].into();
        let dirs = hub_dirs_from(&|n| map.get(n).map(|v| v.to_string()));
        assert_eq!(dirs, [PathBuf::from("/hf/hub"), PathBuf::from("/h/.cache/huggingface/hub")]);
        let map: HashMap<&str, &str> = [("HOME", "/h")].into();
        assert_eq!(hub_dirs_from(&|n| map.get(n).map(|v| v.to_string())).len(), 1);
    }

    #[test]
    fn endpoint_offline_and_token_follow_huggingface_hub() {
        let c = config(&[("HOME", "/h")]);
        assert_eq!(c.endpoint, "https://huggingface.co");
        assert!(!c.offline && c.token.is_none());
        let c = config(&[("HOME", "/h"), ("HF_ENDPOINT", "http://127.0.0.1:9/"), ("HF_HUB_OFFLINE", "yes")]);
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert!(c.offline);
        assert!(!config(&[("HOME", "/h"), ("HF_HUB_OFFLINE", "0")]).offline);
        assert!(config(&[("HOME", "/h"), ("TRANSFORMERS_OFFLINE", "1")]).offline);
        let c = config(&[("HOME", "/h"), ("HF_TOKEN", " hf_abc\n")]);
        assert_eq!(c.token.as_ref().unwrap().expose_secret(), "hf_abc");
        assert!(!format!("{c:?}").contains("hf_abc"), "the token must not print");

        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("token"), "hf_from_file\n").unwrap();
        let hf_home = home.path().to_str().unwrap();
        let c = config(&[("HOME", "/h"), ("HF_HOME", hf_home)]);
        assert_eq!(c.token.as_ref().unwrap().expose_secret(), "hf_from_file");
        let c = config(&[("HOME", "/h"), ("HF_HOME", hf_home), ("HF_TOKEN", "hf_env")]);
        assert_eq!(c.token.as_ref().unwrap().expose_secret(), "hf_env", "HF_TOKEN wins over the file");
        let other = home.path().join("elsewhere");
        std::fs::write(&other, "hf_path").unwrap();
        let c = config(&[("HOME", "/h"), ("HF_TOKEN_PATH", other.to_str().unwrap())]);
        assert_eq!(c.token.as_ref().unwrap().expose_secret(), "hf_path");
    }
}
