//! `POST /v1/embeddings`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use base64::Engine as _;
use mlx_manager_engine::{EmbedInput, EmbedRequest};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{invalid, parse_model_request, JsonBody};
use crate::middleware::RequestContext;
use crate::run::{ensure_loaded, Deadline};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Encoding {
    Float,
    Base64,
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    /// How long the model may stay loaded while idle after this request.
    #[serde(default)]
    keep_alive: Option<serde_json::Value>,
    input: Input,
    encoding_format: Option<Encoding>,
    dimensions: Option<u32>,
    #[serde(default)]
    truncate: bool,
    #[allow(dead_code)]
    user: Option<String>,
}

const SUPPORTED: &[&str] = &["model", "keep_alive", "input", "encoding_format", "dimensions", "truncate", "user"];

/// Most inputs in one request (as OpenAI).
const MAX_INPUTS: usize = 2048;

/// The handler.
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<axum::response::Response, ApiError> {
    crate::routing::dispatch(crate::routing::Api::Embeddings, state, ctx, body).await
}

/// Served by the local engine.
pub(crate) async fn local(
    state: Arc<AppState>,
    ctx: RequestContext,
    body: serde_json::Map<String, serde_json::Value>,
    deadline: Deadline,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: EmbeddingsRequest = parse_model_request(&ctx.record, body, SUPPORTED, &[])?;
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    let inputs: Vec<EmbedInput> = match req.input {
        Input::Text(t) => vec![EmbedInput::Text(t)],
        Input::Texts(v) => v.into_iter().map(EmbedInput::Text).collect(),
        Input::Tokens(ids) => vec![EmbedInput::Tokens(ids)],
        Input::TokenLists(v) => v.into_iter().map(EmbedInput::Tokens).collect(),
    };
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return Err(invalid("input", format!("must hold 1 to {MAX_INPUTS} inputs")));
    }
    if inputs
        .iter()
        .any(|i| matches!(i, EmbedInput::Text(t) if t.is_empty()) || matches!(i, EmbedInput::Tokens(t) if t.is_empty()))
    {
        return Err(invalid("input", "inputs must not be empty"));
    }
    let _permit = state.admission.clone().try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
    ensure_loaded(&state, &req.model, deadline, keep_alive).await?;
    let request = EmbedRequest { model: req.model.clone(), inputs, truncate: req.truncate };
    let result = deadline.run(state.engine.embed(request)).await?.map_err(|e| ApiError::from_engine(e, &req.model))?;
    let width = result.vectors.first().map_or(0, Vec::len);
    if let Some(d) = req.dimensions {
        if d as usize != width {
            return Err(invalid("dimensions", format!("this model only produces {width}-dimensional embeddings")));
        }
    }
    let base64 = matches!(req.encoding_format, Some(Encoding::Base64));
    let data: Vec<serde_json::Value> = result
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    ctx.record.set_tokens(result.prompt_tokens, 0);
    ctx.record.succeed();
    Ok(Json(json!({
        "object": "list", "data": data, "model": req.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    })))
}
