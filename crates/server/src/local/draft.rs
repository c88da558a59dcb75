//! Speculative decoding for a local generation: the request's `draft_model` (mlx_lm.server's
//! field), or the draft set for the model in the server's settings (`serve --draft-model
//! MODEL=DRAFT`), loaded like any model before the generation starts.

use std::sync::Arc;

use mlx_manager_api::openai::Speculative;
use mlx_manager_engine::Draft;

use crate::error::ApiError;
use crate::run::{ensure_loaded, Deadline};
use crate::state::AppState;

/// Tokens a draft proposes per step unless the request says (mlx_lm.server's default).
pub const DEFAULT_DRAFT_TOKENS: usize = 3;

/// The draft for a generation on `model`, loaded. A draft the settings give is left out when
/// the request is constrained (structured output needs each token's mask; the request asked for
/// that, not for a draft); a draft the request names is the request's (the engine refuses the
/// combination by name).
pub(crate) async fn draft(
    state: &Arc<AppState>,
    model: &str,
    asked: &Speculative,
    constrained: bool,
    deadline: Deadline,
) -> Result<Option<Draft>, ApiError> {
    let configured = || state.settings().draft_models.get(model).cloned().filter(|_| !constrained);
    let Some(id) = asked.draft_model.clone().or_else(configured) else { return Ok(None) };
    let info = ensure_loaded(state, &id, deadline, None).await?;
    let tokens = asked.num_draft_tokens.map_or(DEFAULT_DRAFT_TOKENS, |n| n as usize);
    Ok(Some(Draft { model: info.id, tokens }))
}
