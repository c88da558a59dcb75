//! Running one generation for a route: resolve and load the model, admission, the endpoint's
//! deadline (covering loading, queueing and generation), and the events as they come.

use std::sync::Arc;

use mlx_manager_core::EndpointKind;
use mlx_manager_engine::{
    GenerateRequest, GenerationEvent, GenerationParams, GenerationStream, KeepAlive, LoadState, ModelInfo, Prompt,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::AppState;

/// A deadline for one request.
#[derive(Clone, Copy)]
pub struct Deadline {
    at: Instant,
    seconds: u32,
}

impl Deadline {
    /// The deadline of an endpoint family, from now.
    pub fn new(state: &AppState, kind: EndpointKind) -> Deadline {
        let seconds = state.settings().timeouts.seconds(kind);
        Deadline { at: Instant::now() + std::time::Duration::from_secs(u64::from(seconds)), seconds }
    }

    /// Time left.
    pub fn remaining(&self) -> std::time::Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Runs `f` unless the deadline passes first.
    pub async fn run<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T, ApiError> {
        tokio::time::timeout_at(self.at, f).await.map_err(|_| ApiError::Timeout { seconds: self.seconds })
    }
}

/// Makes sure `model` is registered and loaded, applies the request's `keep_alive` to it, and
/// returns what the engine knows of it.
pub async fn ensure_loaded(
    state: &AppState,
    model: &str,
    deadline: Deadline,
    keep_alive: Option<KeepAlive>,
) -> Result<ModelInfo, ApiError> {
    let entry = state.registry.servable(model)?;
    let hit = matches!(*state.engine.load_state(&entry.id).borrow(), LoadState::Ready { .. });
    state.metrics.pool_lookup(hit);
    let info =
        deadline.run(state.engine.load(&entry.id, &entry.path)).await?.map_err(|e| ApiError::from_engine(e, model))?;
    if !hit {
        if let LoadState::Ready { load_ms, .. } = *state.engine.load_state(&entry.id).borrow() {
            state.metrics.model_loaded(load_ms as f64 / 1e3);
        }
    }
    if let Some(keep) = keep_alive {
        state.engine.keep_alive(&entry.id, keep).map_err(|e| ApiError::from_engine(e, model))?;
    }
    Ok(info)
}

/// A running generation.
pub struct Run {
    stream: GenerationStream,
    deadline: Deadline,
    model: String,
    _permit: OwnedSemaphorePermit,
    /// Tokens in the prompt (from the engine's `Started`).
    pub prompt_tokens: usize,
    /// The prompt left the model inside its reasoning block.
    pub reasoning_open: bool,
    /// Tokens carry logprobs.
    pub logprobs: bool,
}

/// What the next step of a run gave.
pub enum Next {
    /// An event.
    Event(GenerationEvent),
    /// The run failed (deadline, engine error).
    Error(ApiError),
}

impl Run {
    /// Starts generating on a model the caller has loaded ([`ensure_loaded`]); fails (as an
    /// HTTP error) if the server is full,
    /// the request is invalid for the engine, or the deadline passes before the first token.
    pub async fn start(
        state: &Arc<AppState>,
        model: &str,
        prompt: Prompt,
        params: GenerationParams,
        deadline: Deadline,
    ) -> Result<Run, ApiError> {
        let permit = state.admission.clone().try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
        let logprobs = params.logprobs;
        let stream = state
            .engine
            .generate(GenerateRequest { model: model.to_string(), prompt, params })
            .map_err(|e| ApiError::from_engine(e, model))?;
        let mut run = Run {
            stream,
            deadline,
            model: model.to_string(),
            _permit: permit,
            prompt_tokens: 0,
            reasoning_open: false,
            logprobs,
        };
        // The engine answers `Started` or an error before any output, so errors about the
        // request itself (template, context length, …) are plain HTTP errors.
        match run.next().await {
            Next::Event(GenerationEvent::Started { prompt_tokens, reasoning_open }) => {
                run.prompt_tokens = prompt_tokens;
                run.reasoning_open = reasoning_open;
            }
            Next::Event(_) => {}
            Next::Error(e) => return Err(e),
        }
        Ok(run)
    }

    /// The next event (Done is the last).
    pub async fn next(&mut self) -> Next {
        match self.deadline.run(self.stream.next()).await {
            Err(timeout) => Next::Error(timeout),
            Ok(None) => Next::Error(ApiError::EngineUnavailable),
            Ok(Some(Err(e))) => Next::Error(ApiError::from_engine(e, &self.model)),
            Ok(Some(Ok(event))) => Next::Event(event),
        }
    }
}
