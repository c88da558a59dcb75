//! What callers can ask the engine thread: each method sends one command with its own reply
//! channel (and the caller's tracing span) and waits for the answer.

use super::*;

impl EngineHandle {
    fn send(&self, command: Command) -> Result<()> {
        self.tx.send(command).map_err(|_| EngineError::Stopped)
    }

    /// Loads the model folder at `path` under `id` if needed (evicting least recently used idle
    /// models to stay within the pool's limits); it may itself be evicted later.
    pub async fn load(&self, id: impl Into<String>, path: impl Into<PathBuf>) -> Result<ModelInfo> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Load { id: id.into(), path: path.into(), pin: false, reply, span: Span::current() })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Like [`EngineHandle::load`], and pins the model: it is never evicted until unloaded.
    pub async fn preload(&self, id: impl Into<String>, path: impl Into<PathBuf>) -> Result<ModelInfo> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Load { id: id.into(), path: path.into(), pin: true, reply, span: Span::current() })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// [`EngineHandle::load`] for non-async callers.
    pub fn load_blocking(&self, id: impl Into<String>, path: impl Into<PathBuf>) -> Result<ModelInfo> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Load { id: id.into(), path: path.into(), pin: false, reply, span: Span::current() })?;
        rx.blocking_recv().map_err(|_| EngineError::Stopped)?
    }

    /// Unloads a model once its running requests have finished (new ones may still start on it
    /// meanwhile), freeing MLX's memory; returns whether it was loaded.
    pub async fn unload(&self, id: impl Into<String>) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Unload { id: id.into(), force: false, reply })?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Unloads a model now: its running requests end with [`EngineError::Unloaded`].
    pub async fn unload_forced(&self, id: impl Into<String>) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Unload { id: id.into(), force: true, reply })?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// The loaded models.
    pub async fn list(&self) -> Result<Vec<ModelInfo>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::List { reply })?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// What the engine is doing now.
    pub async fn status(&self) -> Result<EngineStatus> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Status { reply })?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Mean-pooled, L2-normalised final hidden states of a loaded model, one per input.
    pub async fn embed(&self, request: EmbedRequest) -> Result<Embeddings> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Embed { request, tokens: None, reply, span: Span::current() })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Starts a generation; dropping the stream cancels it at the next token.
    pub fn generate(&self, request: GenerateRequest) -> Result<GenerationStream> {
        let (events, rx) = mpsc::channel(STREAM_BUFFER);
        self.send(Command::Generate { request: Box::new(request), events, span: Span::current() })?;
        Ok(GenerationStream { rx })
    }

    /// Health, updated when the thread stops.
    pub fn health(&self) -> watch::Receiver<EngineHealth> {
        self.health.clone()
    }

    /// A counter bumped whenever the set of loaded models (or a pin) changes: loads, unloads,
    /// evictions and idle expiry alike, whoever caused them.
    pub fn pool_changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Pins or unpins a loaded model; returns whether it was loaded.
    pub async fn set_pinned(&self, id: impl Into<String>, pinned: bool) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SetPinned { id: id.into(), pinned, reply })?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Sets how long a loaded model may stay idle before it is unloaded (a request's `keep_alive`);
    /// it replaces the pool's default TTL for this model until it is unloaded. Pins still win.
    pub fn keep_alive(&self, id: impl Into<String>, keep: KeepAlive) -> Result<()> {
        self.send(Command::KeepAlive { id: id.into(), keep })
    }

    /// One model's loading state, starting with the latest (`NotLoaded` for one never loaded).
    pub fn load_state(&self, id: &str) -> watch::Receiver<LoadState> {
        self.progress.subscribe(id)
    }

    /// Every model's state changes from now on (load started, progress, ready, failed, unloaded).
    pub fn load_events(&self) -> broadcast::Receiver<LoadEvent> {
        self.progress.events()
    }

    /// Replaces the pool's limits; they apply from the next load (and idle check) on.
    pub fn set_pool(&self, config: PoolConfig) -> Result<()> {
        self.send(Command::SetPool { config })
    }
}
