//! Hub search, with what a user needs to choose before downloading: each result's download size,
//! quantization, `model_type` and whether this engine runs it — read from the repo's file list
//! and its config.json, as a pull would read them.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorInfo, Result};
use crate::hub::{is_gated, Hub, SearchHit};
use crate::repo::RepoId;
use crate::select::is_model_file;

/// The Hub's result orders (always descending).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchSort {
    /// Most downloaded first (the Hub's default for browsing).
    #[default]
    Downloads,
    /// Most recently updated first.
    #[serde(alias = "lastModified", alias = "recent")]
    LastModified,
    /// Most liked first.
    Likes,
    /// The Hub's trending score.
    #[serde(alias = "trendingScore")]
    Trending,
}

impl SearchSort {
    fn hub_key(self) -> &'static str {
        match self {
            SearchSort::Downloads => "downloads",
            SearchSort::LastModified => "lastModified",
            SearchSort::Likes => "likes",
            SearchSort::Trending => "trendingScore",
        }
    }
}

/// What to search for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// Text matched against repo ids (the Hub's `search`).
    pub text: Option<String>,
    /// Only this user's or organisation's repos (`mlx-community`).
    pub author: Option<String>,
    /// Only repos of this library (`mlx` by default; empty: any).
    pub library: Option<String>,
    /// The order.
    pub sort: SearchSort,
    /// At most this many results (1–100; 20 by default).
    pub limit: u32,
}

impl Default for SearchQuery {
    fn default() -> SearchQuery {
        SearchQuery { text: None, author: None, library: Some("mlx".into()), sort: SearchSort::Downloads, limit: 20 }
    }
}

impl SearchQuery {
    /// The Hub's query parameters.
    pub(crate) fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        let given = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(text) = given(&self.text) {
            params.push(("search", text));
        }
        if let Some(author) = given(&self.author) {
            params.push(("author", author));
        }
        if let Some(library) = given(&self.library) {
            params.push(("library", library));
        }
        params.push(("sort", self.sort.hub_key().to_string()));
        params.push(("direction", "-1".to_string()));
        params.push(("limit", self.limit.clamp(1, 100).to_string()));
        params
    }
}

/// How the weights are quantized (config.json's `quantization` as mlx-lm writes it, or
/// transformers' `quantization_config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    /// Bits per weight (4, 8, …).
    pub bits: Option<u32>,
    /// Weights per scale.
    pub group_size: Option<u32>,
    /// `affine`, `mxfp4`, … (MLX's mode) or transformers' `quant_method` (`gptq`, `awq`, `fp8`).
    pub mode: Option<String>,
}

/// What config.json says about a model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The `model_type` the engine would go by (the nested `text_config`'s for a multimodal
    /// wrapper whose own type it does not run).
    pub model_type: Option<String>,
    /// `quantization` / `quantization_config`, when quantized.
    pub quantization: Option<Quantization>,
    /// The float weights' dtype (`torch_dtype` / `dtype`).
    pub dtype: Option<String>,
    /// Whether this engine runs it (None: no readable config.json).
    pub supported: Option<bool>,
}

impl ModelSummary {
    /// Reads a config.json. `supported` says whether a `model_type` runs here; the choice
    /// between the top-level and the nested `text_config.model_type` follows the engine's
    /// (`config::resolve`): the top-level one if it runs, else the nested one.
    pub fn from_config(config: &serde_json::Value, supported: &dyn Fn(&str) -> bool) -> ModelSummary {
        let name = |v: &serde_json::Value| v.get("model_type").and_then(|t| t.as_str()).map(str::to_string);
        let top = name(config);
        let nested = config.get("text_config").and_then(name);
        let (model_type, runs) = match (&top, &nested) {
            (Some(t), _) if supported(t) => (top.clone(), true),
            (_, Some(n)) if supported(n) => (nested.clone(), true),
            _ => (nested.clone().or(top.clone()), false),
        };
        let quant = config.get("quantization").or_else(|| config.get("quantization_config")).filter(|q| q.is_object());
        let number = |q: &serde_json::Value, key: &str| q.get(key).and_then(|v| v.as_u64()).map(|v| v as u32);
        let quantization = quant.map(|q| Quantization {
            bits: number(q, "bits"),
            group_size: number(q, "group_size"),
            mode: q
                .get("mode")
                .or_else(|| q.get("quant_method"))
                .and_then(|m| m.as_str())
                .map(String::from)
                .or_else(|| number(q, "bits").map(|_| "affine".to_string())),
        });
        let dtype_of = |v: &serde_json::Value| {
            v.get("torch_dtype").or_else(|| v.get("dtype")).and_then(|d| d.as_str()).map(String::from)
        };
        let dtype = dtype_of(config).or_else(|| config.get("text_config").and_then(dtype_of));
        ModelSummary { model_type, quantization, dtype, supported: Some(runs) }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// `org/name`.
    pub id: String,
    /// The user or organisation.
    pub author: Option<String>,
    /// Downloads in the last 30 days (as the Hub counts them).
    pub downloads: Option<u64>,
    /// Likes.
    pub likes: Option<u64>,
    /// Last change (ISO 8601).
    pub last_modified: Option<String>,
    /// `text-generation`, …
    pub pipeline_tag: Option<String>,
    /// `mlx`, `transformers`, …
    pub library_name: Option<String>,
    /// Its terms must be accepted (and a token set) before it downloads.
    pub gated: bool,
    /// The commit `main` is at.
    pub commit: Option<String>,
    /// Bytes a pull downloads (the files a model needs; None when the file list could not be read).
    pub size_bytes: Option<u64>,
    /// What config.json says (all None when it could not be read).
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// A complete copy is already in the local cache.
    pub installed: bool,
    /// Why size or config are missing, if they are.
    pub details_error: Option<ErrorInfo>,
}

/// Searches, then reads each result's files and config.json (8 repos at a time, in the Hub's
/// order).
pub(crate) async fn search(
    hub: &Hub,
    query: &SearchQuery,
    supported: &(dyn Fn(&str) -> bool + Sync),
    installed: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<SearchResult>> {
    let hits = hub.search(&query.params()).await?;
    let results = futures_util::stream::iter(hits)
        .map(|hit| details(hub, hit, supported, installed))
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    Ok(results)
}

async fn details(
    hub: &Hub,
    hit: SearchHit,
    supported: &(dyn Fn(&str) -> bool + Sync),
    installed: &(dyn Fn(&str) -> bool + Sync),
) -> SearchResult {
    let mut result = SearchResult {
        installed: installed(&hit.id),
        id: hit.id.clone(),
        author: hit.author.or_else(|| hit.id.split_once('/').map(|(a, _)| a.to_string())),
        downloads: hit.downloads,
        likes: hit.likes,
        last_modified: hit.last_modified.or(hit.created_at),
        pipeline_tag: hit.pipeline_tag,
        library_name: hit.library_name,
        gated: is_gated(&hit.gated),
        commit: None,
        size_bytes: None,
        summary: ModelSummary::default(),
        details_error: None,
    };
    let Ok(repo) = RepoId::parse(&hit.id) else { return result };
    let info = match hub.model_info(&repo, "main").await {
        Ok(info) => info,
        Err(e) => {
            result.details_error = Some(e.info());
            return result;
        }
    };
    result.gated |= is_gated(&info.gated);
    result.last_modified = info.last_modified.or(result.last_modified);
    result.downloads = result.downloads.or(info.downloads);
    result.likes = result.likes.or(info.likes);
    let needed = info.siblings.iter().filter(|s| is_model_file(&s.rfilename));
    result.size_bytes = Some(needed.map(|s| s.lfs.as_ref().map(|l| l.size).or(s.size).unwrap_or(0)).sum());
    let commit = info.sha.clone().unwrap_or_else(|| "main".into());
    result.commit = info.sha;
    if info.siblings.iter().any(|s| s.rfilename == "config.json") {
        match hub.small_file(&repo, &commit, "config.json").await {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(config) => result.summary = ModelSummary::from_config(&config, supported),
                Err(e) => {
                    result.details_error = Some(ErrorInfo {
                        code: "invalid_config".into(),
                        message: format!("config.json is not valid JSON: {e}"),
                    })
                }
            },
            Err(e) => result.details_error = Some(e.info()),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn runs(t: &str) -> bool {
        matches!(t, "llama" | "qwen2" | "gemma3_text")
    }

    #[test]
    fn mlx_quantization_and_dtypes_are_read() {
        let config =
            json!({"model_type": "qwen2", "quantization": {"group_size": 64, "bits": 4}, "torch_dtype": "bfloat16"});
        let s = ModelSummary::from_config(&config, &runs);
        assert_eq!(s.model_type.as_deref(), Some("qwen2"));
        assert_eq!(s.supported, Some(true));
        assert_eq!(
            s.quantization,
            Some(Quantization { bits: Some(4), group_size: Some(64), mode: Some("affine".into()) })
        );
        assert_eq!(s.dtype.as_deref(), Some("bfloat16"));
        let config =
            json!({"model_type": "gpt_oss", "quantization_config": {"quant_method": "mxfp4"}, "dtype": "bfloat16"});
        let s = ModelSummary::from_config(&config, &runs);
        assert_eq!(s.supported, Some(false));
        assert_eq!(s.quantization.unwrap().mode.as_deref(), Some("mxfp4"));
    }

    #[test]
    fn a_multimodal_wrapper_runs_when_its_text_model_does() {
        let config =
            json!({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "torch_dtype": "float16"}});
        let s = ModelSummary::from_config(&config, &runs);
        assert_eq!((s.model_type.as_deref(), s.supported), (Some("gemma3_text"), Some(true)));
        assert_eq!(s.dtype.as_deref(), Some("float16"));
        let config = json!({"model_type": "mamba"});
        assert_eq!(ModelSummary::from_config(&config, &runs).supported, Some(false));
    }

    #[test]
    fn queries_become_the_hubs_parameters() {
        let q = SearchQuery { text: Some(" qwen ".into()), author: Some("mlx-community".into()), ..Default::default() };
        let p: Vec<(&str, String)> = q.params();
        assert_eq!(
            p,
            [
                ("search", "qwen".to_string()),
                ("author", "mlx-community".into()),
                ("library", "mlx".into()),
                ("sort", "downloads".into()),
                ("direction", "-1".into()),
                ("limit", "20".into())
            ]
        );
        let q = SearchQuery {
            library: Some(String::new()),
            sort: SearchSort::LastModified,
            limit: 1000,
            ..Default::default()
        };
        assert_eq!(
            q.params(),
            [("sort", "lastModified".to_string()), ("direction", "-1".into()), ("limit", "100".into())]
        );
    }
}
