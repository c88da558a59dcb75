//! `POST /v1/embeddings` on the local engine.

use std::sync::Arc;

use axum::response::Response;
use base64::Engine as _;
use mlx_manager_api::openai::{
    Embedding, EmbeddingUsage, Embeddings, EmbeddingsRequest, EncodingFormat, TextOrTokens, Vector,
};
use mlx_manager_engine::{EmbedInput, EmbedRequest};

use crate::error::ApiError;
use crate::extract::invalid;
use crate::middleware::RequestContext;
use crate::run::{ensure_loaded, Deadline};
use crate::state::AppState;

/// Serves `req` (checked by `check::embeddings`).
pub(crate) async fn serve(
    state: Arc<AppState>,
    ctx: RequestContext,
    req: EmbeddingsRequest,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    let inputs: Vec<EmbedInput> = match req.input {
        TextOrTokens::Text(t) => vec![EmbedInput::Text(t)],
        TextOrTokens::Texts(v) => v.into_iter().map(EmbedInput::Text).collect(),
        TextOrTokens::Tokens(ids) => vec![EmbedInput::Tokens(ids)],
        TextOrTokens::TokenLists(v) => v.into_iter().map(EmbedInput::Tokens).collect(),
    };
    let _permit = state.admission.clone().try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
    ensure_loaded(&state, &req.model, deadline, keep_alive).await?;
    let request = EmbedRequest { model: req.model.clone(), inputs, truncate: req.truncate == Some(true) };
    let result = deadline.run(state.engine.embed(request)).await?.map_err(|e| ApiError::from_engine(e, &req.model))?;
    let width = result.vectors.first().map_or(0, Vec::len);
    if let Some(d) = req.dimensions {
        if d as usize != width {
            return Err(invalid("dimensions", format!("this model only produces {width}-dimensional embeddings")));
        }
    }
    let base64 = req.encoding_format == Some(EncodingFormat::Base64);
    let data = result
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Float(v)
            };
            Embedding { object: "embedding".into(), index: index as u32, embedding }
        })
        .collect();
    let tokens = result.prompt_tokens as u32;
    let body = Embeddings {
        object: "list".into(),
        data,
        model: req.model,
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    };
    Ok(crate::respond::recorded(&ctx.record, body, tokens, 0))
}
