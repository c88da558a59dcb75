//! The engine thread: the only thread that ever touches MLX. Callers hold a cloneable
//! [`EngineHandle`] and send commands, each with its own reply channel and tracing span. Running
//! generations are stepped in turn, batched per model (new short prompts prefilled together,
//! decoding sequences advanced one token together, see [`batch`]), so concurrent requests to a
//! model share it fairly; a generation whose receiver is gone stops at its next step, and one
//! whose receiver is full waits without holding the others up.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Span;

use crate::constraint::{Compile, Constraint};
use crate::error::{EngineError, Result};
use crate::generate::{prompt_tokens, GenerationEvent, Sequence, Step};
use crate::loaded::Loaded;
use crate::pool::{idle_expired, KeepAlive, PoolConfig};
use crate::progress::{LoadEvent, LoadProgress, LoadState};

mod batch;
mod handle;
mod load_queue;
mod types;
use load_queue::LoadQueue;
pub use types::{EmbedInput, EmbedRequest, Embeddings, EngineHealth, EngineStatus, GenerateRequest, ModelInfo};

/// Tokens buffered per generation before the engine waits for the reader.
const STREAM_BUFFER: usize = 32;

/// Most inputs embedded in one batch.
const EMBED_BATCH: usize = 32;

/// How often idle models are checked against their keep-alive / TTL.
const IDLE_CHECK: Duration = Duration::from_secs(1);

enum Command {
    Load {
        id: String,
        path: PathBuf,
        pin: bool,
        reply: oneshot::Sender<Result<ModelInfo>>,
        span: Span,
    },
    Unload {
        id: String,
        force: bool,
        reply: oneshot::Sender<bool>,
    },
    List {
        reply: oneshot::Sender<Vec<ModelInfo>>,
    },
    Status {
        reply: oneshot::Sender<EngineStatus>,
    },
    SetPinned {
        id: String,
        pinned: bool,
        reply: oneshot::Sender<bool>,
    },
    SetPool {
        config: PoolConfig,
    },
    KeepAlive {
        id: String,
        keep: KeepAlive,
    },
    Embed {
        request: EmbedRequest,
        reply: oneshot::Sender<Result<Embeddings>>,
        span: Span,
    },
    // Boxed: a request (its prompt, template kwargs and parameters) is several times the size of
    // every other command.
    Generate {
        request: Box<GenerateRequest>,
        events: mpsc::Sender<Result<GenerationEvent>>,
        span: Span,
    },
    /// A constrained generation's grammar, compiled off this thread (see `Actor::compiling`);
    /// boxed like `Generate`.
    Compiled {
        key: u64,
        constraint: Box<Result<Constraint>>,
    },
    Shutdown,
}

/// A cloneable, thread-safe way to talk to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: std_mpsc::Sender<Command>,
    health: watch::Receiver<EngineHealth>,
    changes: watch::Receiver<u64>,
    progress: LoadProgress,
}

/// Owns the engine thread; dropping it stops the thread and joins it.
pub struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
}

/// The events of one generation, in order; ends after `Done` or an error.
pub struct GenerationStream {
    rx: mpsc::Receiver<Result<GenerationEvent>>,
}

impl GenerationStream {
    /// The next event, or None when the stream is over.
    pub async fn next(&mut self) -> Option<Result<GenerationEvent>> {
        self.rx.recv().await
    }

    /// The next event, blocking the current (non-async) thread.
    pub fn blocking_next(&mut self) -> Option<Result<GenerationEvent>> {
        self.rx.blocking_recv()
    }
}

impl Engine {
    /// Starts the engine thread with the default pool limits.
    pub fn start() -> Result<Engine> {
        Engine::start_with(PoolConfig::default())
    }

    /// Starts the engine thread and waits until MLX is initialised on it.
    pub fn start_with(pool: PoolConfig) -> Result<Engine> {
        let (tx, rx) = std_mpsc::channel();
        let (health_tx, health) = watch::channel(EngineHealth::Ready);
        let (changes_tx, changes) = watch::channel(0u64);
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let progress = LoadProgress::default();
        let actor_progress = progress.clone();
        let own_tx = tx.clone();
        let thread = std::thread::Builder::new()
            .name("mlx-engine".into())
            .spawn(move || {
                let init = init_device();
                let ok = init.is_ok();
                let _ = ready_tx.send(init);
                if ok {
                    Actor {
                        pool,
                        models: HashMap::new(),
                        running: VecDeque::new(),
                        batched_prompts: 0,
                        batched_tokens: 0,
                        gather: batch::Gather::default(),
                        streams: batch::Streams::for_default_device(),
                        changes: changes_tx,
                        idle_checked: Instant::now(),
                        draining: Vec::new(),
                        progress: actor_progress,
                        waiting: LoadQueue::default(),
                        compiling: HashMap::new(),
                        next_compile: 0,
                        own: own_tx,
                    }
                    .run(rx);
                }
                let _ = health_tx.send(EngineHealth::Stopped);
            })
            .map_err(|e| EngineError::Mlx { message: format!("cannot start the engine thread: {e}") })?;
        ready_rx.recv().map_err(|_| EngineError::Stopped)??;
        Ok(Engine { handle: EngineHandle { tx, health, changes, progress }, thread: Some(thread) })
    }

    /// A handle for callers.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.handle.tx.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Selects the device on the engine thread: the GPU where MLX has one (Metal), else the CPU.
fn init_device() -> Result<()> {
    #[cfg(feature = "metal")]
    {
        if mlx_rs::Stream::try_default_on_device(&mlx_rs::Device::gpu()).is_ok() {
            mlx_rs::Device::set_default(&mlx_rs::Device::gpu());
            return Ok(());
        }
    }
    mlx_rs::Device::set_default(&mlx_rs::Device::cpu());
    crate::cpu_kernels::report();
    Ok(())
}

struct Running {
    model: String,
    seq: Sequence,
    events: mpsc::Sender<Result<GenerationEvent>>,
    span: Span,
}

struct Actor {
    pool: PoolConfig,
    models: HashMap<String, Loaded>,
    running: VecDeque<Running>,
    /// Prompts prefilled together with others (see [`batch`]).
    batched_prompts: u64,
    /// Tokens decoded together with other sequences' (see [`batch::decode_running`]).
    batched_tokens: u64,
    /// Whether new prompts wait a moment for more (see [`batch::Gather`]).
    gather: batch::Gather,
    /// Where passes compute (see [`batch::Streams`]).
    streams: batch::Streams,
    changes: watch::Sender<u64>,
    idle_checked: Instant,
    /// Unloads waiting for their model's running requests to finish.
    draining: Vec<(String, oneshot::Sender<bool>)>,
    progress: LoadProgress,
    /// Loads waiting for busy models to finish.
    waiting: LoadQueue,
    /// Constrained generations whose grammar compiles on another thread: they join `running`
    /// when it arrives (`Command::Compiled`), so compiling never holds up other streams.
    compiling: HashMap<u64, (Running, bool)>,
    next_compile: u64,
    /// This thread's own command channel, for the compile threads to answer on.
    own: std_mpsc::Sender<Command>,
}

impl Actor {
    fn run(mut self, rx: std_mpsc::Receiver<Command>) {
        loop {
            // Unloads and loads waiting for running requests to end.
            self.finish_drains();
            if self.has_waiting_loads() {
                self.retry_waiting();
            }
            // About once a second, whatever else is going on (commands keep arriving while a
            // window polls, other models keep generating): unload models past their idle time.
            if self.idle_checked.elapsed() >= IDLE_CHECK {
                self.idle_checked = Instant::now();
                self.expire_idle();
            }
            // Block when idle (waking for the next idle check); otherwise only drain what is waiting.
            let command = if self.running.is_empty() {
                match rx.recv_timeout(IDLE_CHECK) {
                    Ok(c) => Some(c),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(c) => Some(c),
                    Err(std_mpsc::TryRecvError::Empty) => None,
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                }
            };
            if let Some(command) = command {
                if !self.handle(command) {
                    return;
                }
                continue;
            }
            if self.running.is_empty() {
                continue;
            }
            if let Some(wait) = self.gather.wait(&self.running) {
                match rx.recv_timeout(wait) {
                    Ok(command) => {
                        if !self.handle(command) {
                            return;
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            if !self.step_one() {
                // Every running generation waits for its reader: give them a moment.
                if let Ok(command) = rx.recv_timeout(Duration::from_millis(2)) {
                    if !self.handle(command) {
                        return;
                    }
                }
            }
        }
    }

    /// Returns false on shutdown.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Load { id, path, pin, reply, span } => self.load(id, path, pin, reply, span),
            Command::Unload { id, force, reply } => {
                if force || !self.running.iter().any(|r| r.model == id) {
                    let _ = reply.send(self.unload_now(&id));
                } else {
                    self.draining.push((id, reply));
                }
            }
            Command::SetPinned { id, pinned, reply } => {
                let found = self.models.get_mut(&id).map(|m| m.info.pinned = pinned).is_some();
                if found {
                    self.changed();
                }
                let _ = reply.send(found);
            }
            Command::KeepAlive { id, keep } => {
                if let Some(m) = self.models.get_mut(&id) {
                    m.keep_alive = Some(keep);
                }
            }
            Command::SetPool { config } => {
                self.pool = config;
                self.expire_idle();
            }
            Command::List { reply } => {
                let _ = reply.send(self.loaded());
            }
            Command::Status { reply } => {
                self.running.retain(|r| !r.events.is_closed());
                let _ = reply.send(EngineStatus {
                    running: self.running.len(),
                    loaded: self.loaded(),
                    batched_prompts: self.batched_prompts,
                    batched_tokens: self.batched_tokens,
                    split_batches: self.streams.split_batches(),
                });
            }
            Command::Generate { request, events, span } => {
                let started = span.in_scope(|| self.start(&request));
                match started {
                    Ok((seq, reasoning_open, None)) => {
                        let started = GenerationEvent::Started { prompt_tokens: seq.prompt_len(), reasoning_open };
                        let _ = events.try_send(Ok(started));
                        self.running.push_back(Running { model: request.model, seq, events, span });
                    }
                    Ok((seq, reasoning_open, Some(compile))) => {
                        let key = self.next_compile;
                        self.next_compile += 1;
                        let own = self.own.clone();
                        rayon::spawn(move || {
                            let _ = own.send(Command::Compiled { key, constraint: Box::new(compile.run()) });
                        });
                        let running = Running { model: request.model, seq, events, span };
                        self.compiling.insert(key, (running, reasoning_open));
                    }
                    Err(e) => {
                        let _ = events.try_send(Err(e));
                    }
                }
            }
            Command::Compiled { key, constraint } => {
                let Some((mut r, reasoning_open)) = self.compiling.remove(&key) else { return true };
                match *constraint {
                    Ok(c) => {
                        r.seq.attach(c);
                        let started = GenerationEvent::Started { prompt_tokens: r.seq.prompt_len(), reasoning_open };
                        let _ = r.events.try_send(Ok(started));
                        self.running.push_back(r);
                    }
                    Err(e) => {
                        let _ = r.events.try_send(Err(e));
                    }
                }
            }
            Command::Embed { request, reply, span } => {
                let result = span.in_scope(|| self.embed(&request));
                let _ = reply.send(result);
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Removes a model (ending its running requests with `Unloaded`) and frees MLX's cache.
    fn unload_now(&mut self, id: &str) -> bool {
        self.running.retain(|r| {
            let keep = r.model != id;
            if !keep {
                let _ = r.events.try_send(Err(EngineError::Unloaded { model: id.to_string() }));
            }
            keep
        });
        let was = self.models.remove(id).is_some();
        crate::pool::release_memory();
        if was {
            self.progress.publish(id, LoadState::NotLoaded);
            self.changed();
        }
        was
    }

    /// Completes the unloads that were waiting for their model's requests to finish.
    fn finish_drains(&mut self) {
        if self.draining.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.draining)
            .into_iter()
            .partition(|(id, _)| !self.running.iter().any(|r| &r.model == id));
        self.draining = waiting;
        for (id, reply) in ready {
            let _ = reply.send(self.unload_now(&id));
        }
    }

    /// Unloads unpinned, idle models whose idle time passed their keep-alive or the pool's TTL.
    fn expire_idle(&mut self) {
        let before = self.models.len();
        let default = self.pool.idle_ttl;
        let running = &self.running;
        let progress = &self.progress;
        self.models.retain(|id, m| {
            let busy = running.iter().any(|r| &r.model == id);
            let keep = !idle_expired(m.last_used.elapsed(), m.keep_alive, default, m.info.pinned, busy);
            if !keep {
                tracing::info!(model = %id, "unloaded after its idle TTL");
                progress.publish(id, LoadState::NotLoaded);
            }
            keep
        });
        if self.models.len() != before {
            crate::pool::release_memory();
            self.changed();
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn loaded(&self) -> Vec<ModelInfo> {
        let mut infos: Vec<_> = self
            .models
            .values()
            .map(|m| ModelInfo { kv_cache_bytes: self.kv_cache_bytes(&m.info.id), ..m.info() })
            .collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        infos
    }

    /// Bytes of key/value cache the running requests on `model` hold.
    fn kv_cache_bytes(&self, model: &str) -> usize {
        let kept = self.models.get(model).and_then(|m| m.prompt_cache.as_ref()).map_or(0, |c| c.nbytes());
        kept + self.running.iter().filter(|r| r.model == model).map(|r| r.seq.cache_bytes()).sum::<usize>()
    }

    /// The loaded model `id`, marked as used by one more request.
    fn use_model(&mut self, id: &str) -> Result<&mut Loaded> {
        let loaded = self.models.get_mut(id).ok_or_else(|| EngineError::ModelNotFound { model: id.to_string() })?;
        loaded.touch();
        Ok(loaded)
    }

    fn embed(&mut self, request: &EmbedRequest) -> Result<Embeddings> {
        let loaded = self.use_model(&request.model)?;
        if request.inputs.is_empty() {
            return Err(EngineError::InvalidRequest { field: "input", message: "input must not be empty".into() });
        }
        let vocab = loaded.model.config.vocab_size as u32;
        let mut all: Vec<Vec<u32>> = Vec::with_capacity(request.inputs.len());
        for input in &request.inputs {
            let mut tokens = match input {
                EmbedInput::Text(text) => loaded.tokenizer.encode(text, false)?,
                EmbedInput::Tokens(ids) => ids.clone(),
            };
            if tokens.is_empty() {
                return Err(EngineError::InvalidRequest { field: "input", message: "an input is empty".into() });
            }
            if let Some(bad) = tokens.iter().find(|&&t| t >= vocab) {
                return Err(EngineError::InvalidRequest {
                    field: "input",
                    message: format!("token id {bad} is outside the vocabulary ({vocab})"),
                });
            }
            if let Some(ctx) = loaded.model.config.max_position_embeddings {
                if tokens.len() > ctx {
                    if !request.truncate {
                        return Err(EngineError::ContextLength { prompt_tokens: tokens.len(), context_length: ctx });
                    }
                    tokens.truncate(ctx);
                }
            }
            all.push(tokens);
        }
        // Batches of up to EMBED_BATCH inputs of similar length (sorted, so padding stays small);
        // results go back in input order.
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by_key(|&i| all[i].len());
        let mut vectors = vec![Vec::new(); all.len()];
        for chunk in order.chunks(EMBED_BATCH) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| all[i].as_slice()).collect();
            for (&i, v) in chunk.iter().zip(loaded.model.embed_batch(&seqs)?) {
                vectors[i] = v;
            }
        }
        let prompt_tokens = all.iter().map(Vec::len).sum();
        Ok(Embeddings { vectors, prompt_tokens })
    }

    /// The request's sequence, whether its prompt leaves the model inside reasoning, and the
    /// compilation of its grammar when it has one (run on another thread before it starts).
    fn start(&mut self, request: &GenerateRequest) -> Result<(Sequence, bool, Option<Compile>)> {
        let loaded = self.use_model(&request.model)?;
        let (tokens, reasoning_open) = prompt_tokens(&loaded.tokenizer, &request.prompt, &loaded.info.output)?;
        let compile = match &request.params.grammar {
            Some(grammar) => Some(loaded.compile(&request.params, grammar, reasoning_open)?),
            None => None,
        };
        // The model's prompt cache goes to this sequence if it shares a long enough beginning.
        let reuse = loaded.prompt_cache.take_if(|c| c.serves(&tokens));
        let params = request.params.clone();
        Ok((Sequence::new(&loaded.model, &loaded.tokenizer, tokens, params, reuse)?, reasoning_open, compile))
    }

    /// Steps the first generation that can take a token; false when none could.
    fn step_one(&mut self) -> bool {
        for _ in 0..self.running.len() {
            let Some(mut r) = self.running.pop_front() else { return false };
            if r.events.is_closed() {
                tracing::debug!(parent: &r.span, "generation cancelled: receiver gone");
                continue;
            }
            // Room for a token and the final event, so sends below never block.
            if r.events.capacity() < 2 {
                self.running.push_back(r);
                continue;
            }
            let Some(loaded) = self.models.get(&r.model) else {
                let _ = r.events.try_send(Err(EngineError::ModelNotFound { model: r.model.clone() }));
                continue;
            };
            let stepped = if r.seq.fresh_prompt().is_some() {
                let stepped = batch::prefill_new_prompts(&mut self.running, loaded, r, &mut self.streams);
                self.gather.prefilled();
                if stepped.len() > 1 {
                    self.batched_prompts += stepped.len() as u64;
                }
                stepped
            } else if r.seq.decoding() {
                let stepped = batch::decode_running(&mut self.running, loaded, r);
                if stepped.len() > 1 {
                    self.batched_tokens += stepped.len() as u64;
                }
                stepped
            } else {
                let step = r.span.in_scope(|| r.seq.prefill_step(&loaded.model));
                vec![(r, step)]
            };
            for (r, step) in stepped {
                self.deliver(r, step);
            }
            return true;
        }
        false
    }

    /// Sends what a step produced and keeps the sequence running unless it ended.
    fn deliver(&mut self, r: Running, step: Result<Step>) {
        match step {
            Ok(Step::Continue) => self.running.push_back(r),
            Ok(Step::Token(event)) => {
                if r.events.try_send(Ok(event)).is_ok() {
                    self.running.push_back(r);
                }
            }
            Ok(Step::Finished(events)) => {
                self.gather.finished();
                for event in events {
                    let _ = r.events.try_send(Ok(event));
                }
                if let (Some(cache), Some(loaded)) = (r.seq.into_prompt_cache(), self.models.get_mut(&r.model)) {
                    loaded.prompt_cache = Some(cache);
                }
            }
            Err(e) => {
                tracing::warn!(parent: &r.span, error = %e, "generation failed");
                let _ = r.events.try_send(Err(e));
            }
        }
    }
}
