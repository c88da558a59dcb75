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

use crate::error::{EngineError, Result};
use crate::generate::{GenerationEvent, GenerationParams, Prompt, Sequence, Step};
use crate::loaded::Loaded;
use crate::pool::{idle_expired, KeepAlive, PoolConfig};
use crate::progress::{LoadEvent, LoadProgress, LoadState};

mod batch;
mod embed;
mod handle;
mod load_queue;
mod pace;
mod prepare;
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
    /// Sent by callers with `tokens: None`; comes back from the `prepare` pool with the
    /// inputs' tokens.
    Embed {
        request: EmbedRequest,
        tokens: Option<Result<Vec<Vec<u32>>>>,
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
    /// A generation's prompt tokenized (and its grammar compiled) off this thread (see
    /// `Actor::preparing`); boxed like `Generate`.
    Prepared {
        key: u64,
        prepared: Box<Result<prepare::Prepared>>,
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
                let init = init_device().and_then(|()| prepare::pool());
                let prepare = match init {
                    Ok(pool) => {
                        let _ = ready_tx.send(Ok(()));
                        Some(pool)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        None
                    }
                };
                if let Some(prepare) = prepare {
                    Actor {
                        pool,
                        models: HashMap::new(),
                        running: VecDeque::new(),
                        batched_prompts: 0,
                        batched_tokens: 0,
                        gather: batch::Gather::default(),
                        pace: pace::Pace::default(),
                        streams: batch::Streams::for_default_device(),
                        changes: changes_tx,
                        idle_checked: Instant::now(),
                        draining: Vec::new(),
                        progress: actor_progress,
                        waiting: LoadQueue::default(),
                        preparing: HashMap::new(),
                        next_key: 0,
                        prepare,
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
    /// Seconds per position of its last prefill slice (see [`pace`]).
    rate: Option<f64>,
}

/// A generation whose prompt is being prepared (see [`prepare`]).
struct Preparing {
    model: String,
    params: GenerationParams,
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
    /// How much prompt work a step may do while others decode (see [`pace`]).
    pace: pace::Pace,
    /// Where passes compute (see [`batch::Streams`]).
    streams: batch::Streams,
    changes: watch::Sender<u64>,
    idle_checked: Instant,
    /// Unloads waiting for their model's running requests to finish.
    draining: Vec<(String, oneshot::Sender<bool>)>,
    progress: LoadProgress,
    /// Loads waiting for busy models to finish.
    waiting: LoadQueue,
    /// Generations whose prompt is rendered, tokenized (and grammar compiled) on the `prepare`
    /// pool: they join `running` when that is done (`Command::Prepared`), so no request's
    /// preparation ever holds up other streams.
    preparing: HashMap<u64, Preparing>,
    next_key: u64,
    prepare: rayon::ThreadPool,
    /// This thread's own command channel, for the preparing threads to answer on.
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
                if force || !self.busy(&id) {
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
                let GenerateRequest { model, prompt, params } = *request;
                let job = span.in_scope(|| self.job(&model, prompt, &params));
                match job {
                    Ok(job) => {
                        let key = self.next_key;
                        self.next_key += 1;
                        let own = self.own.clone();
                        let job_span = span.clone();
                        self.prepare.spawn(move || {
                            let prepared = job_span.in_scope(|| job.run());
                            let _ = own.send(Command::Prepared { key, prepared: Box::new(prepared) });
                        });
                        self.preparing.insert(key, Preparing { model, params, events, span });
                    }
                    Err(e) => {
                        let _ = events.try_send(Err(e));
                    }
                }
            }
            Command::Prepared { key, prepared } => {
                let Some(p) = self.preparing.remove(&key) else { return true };
                let started = p.span.in_scope(|| self.start(&p.model, p.params, *prepared));
                match started {
                    Ok((seq, reasoning_open)) => {
                        let started = GenerationEvent::Started { prompt_tokens: seq.prompt_len(), reasoning_open };
                        let _ = p.events.try_send(Ok(started));
                        let r = Running { model: p.model, seq, events: p.events, span: p.span, rate: None };
                        self.running.push_back(r);
                    }
                    Err(e) => {
                        let _ = p.events.try_send(Err(e));
                    }
                }
            }
            Command::Embed { request, tokens: None, reply, span } => self.embed_job(request, reply, span),
            Command::Embed { request, tokens: Some(tokens), reply, span } => {
                let result = tokens.and_then(|all| span.in_scope(|| self.embed(&request.model, all)));
                let _ = reply.send(result);
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Whether requests are running on model `id` or being prepared for it.
    fn busy(&self, id: &str) -> bool {
        self.running.iter().any(|r| r.model == id || r.seq.draft_model() == Some(id))
            || self.preparing.values().any(|p| p.model == id || p.params.draft.as_ref().is_some_and(|d| d.model == id))
    }

    /// Removes a model (ending its running and preparing requests with `Unloaded`) and frees
    /// MLX's cache.
    fn unload_now(&mut self, id: &str) -> bool {
        let unloaded = || Err(EngineError::Unloaded { model: id.to_string() });
        self.running.retain(|r| {
            let keep = r.model != id;
            if !keep {
                let _ = r.events.try_send(unloaded());
            }
            keep
        });
        self.preparing.retain(|_, p| {
            let keep = p.model != id;
            if !keep {
                let _ = p.events.try_send(unloaded());
            }
            keep
        });
        let was = self.models.remove(id).is_some();
        self.pace.forget(id);
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
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.draining).into_iter().partition(|(id, _)| !self.busy(id));
        self.draining = waiting;
        for (id, reply) in ready {
            let _ = reply.send(self.unload_now(&id));
        }
    }

    /// Unloads unpinned, idle models whose idle time passed their keep-alive or the pool's TTL.
    fn expire_idle(&mut self) {
        let before = self.models.len();
        let default = self.pool.idle_ttl;
        let busy: std::collections::HashSet<String> = self.models.keys().filter(|id| self.busy(id)).cloned().collect();
        let progress = &self.progress;
        self.models.retain(|id, m| {
            let busy = busy.contains(id);
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

    /// What preparing the request needs from its model (see [`prepare`]).
    fn job(&mut self, model: &str, prompt: Prompt, params: &GenerationParams) -> Result<prepare::Job> {
        let loaded = self.use_model(model)?;
        let compile = match &params.grammar {
            Some(grammar) => Some(loaded.compile(params, grammar)?),
            None => None,
        };
        Ok(prepare::Job {
            tokenizer: loaded.tokenizer.clone(),
            output: loaded.info.output.clone(),
            prompt,
            context: loaded.model.config.max_position_embeddings,
            compile,
        })
    }

    /// The sequence of a prepared request, and whether its prompt leaves the model inside
    /// reasoning.
    fn start(
        &mut self,
        model: &str,
        params: GenerationParams,
        prepared: Result<prepare::Prepared>,
    ) -> Result<(Sequence, bool)> {
        let prepared = prepared?;
        let draft = params.draft.clone();
        let loaded = self.models.get_mut(model).ok_or_else(|| EngineError::Unloaded { model: model.to_string() })?;
        // The model's prompt cache goes to this sequence if it shares a long enough beginning.
        let tokens = prepared.tokens;
        let reuse = loaded.prompt_cache.take_if(|c| c.serves(&tokens));
        let mut seq = Sequence::new(&loaded.model, &loaded.tokenizer, tokens, params, reuse)?;
        if let Some(c) = prepared.constraint {
            seq.attach(c);
        }
        if let Some(spec) = draft {
            let with = self.models.get(&spec.model).ok_or(EngineError::ModelNotFound { model: spec.model.clone() })?;
            seq.with_draft(&self.models[model].model, &spec, &with.model)?;
        }
        Ok((seq, prepared.reasoning_open))
    }

    /// Steps the first generation that can take a token; false when none could. Right after a
    /// prefill slice, a decoding sequence goes first when there is one that can take a token, so
    /// that prompts being prefilled (however many) never hold running streams up for more than
    /// one slice.
    fn step_one(&mut self) -> bool {
        let ready = |r: &Running| !r.events.is_closed() && r.events.capacity() >= r.seq.room();
        let decoding = self.running.iter().any(|r| r.seq.decoding() && ready(r));
        let decode_first = decoding && self.pace.after_prefill();
        for _ in 0..self.running.len() {
            let Some(mut r) = self.running.pop_front() else { return false };
            if r.events.is_closed() {
                tracing::debug!(parent: &r.span, "generation cancelled: receiver gone");
                continue;
            }
            // Room for a token and the final event, so sends below never block.
            if !ready(&r) || (decode_first && !r.seq.decoding()) {
                self.running.push_back(r);
                continue;
            }
            let Some(loaded) = self.models.get(&r.model) else {
                let _ = r.events.try_send(Err(EngineError::ModelNotFound { model: r.model.clone() }));
                continue;
            };
            let stepped = if r.seq.speculative() {
                self.pace.starting(pace::Work::Decode);
                let draft = r.seq.draft_model().and_then(|d| self.models.get(d));
                let step = match draft {
                    Some(draft) => {
                        r.span.in_scope(|| r.seq.speculate(&loaded.model, &draft.model, &loaded.tokenizer, &loaded.eos))
                    }
                    None => Err(EngineError::ModelNotFound { model: r.seq.draft_model().unwrap_or_default().into() }),
                };
                vec![(r, step)]
            } else if r.seq.decoding() {
                self.pace.starting(pace::Work::Decode);
                let stepped = batch::decode_running(&mut self.running, loaded, r);
                if stepped.len() > 1 {
                    self.batched_tokens += stepped.len() as u64;
                }
                stepped
            } else {
                self.pace.starting(pace::Work::Prefill);
                let positions = self.pace.batch(&r.model, decoding);
                if r.seq.fresh_prompt(positions).is_some() {
                    let stepped =
                        batch::prefill_new_prompts(&mut self.running, loaded, r, &mut self.streams, positions);
                    self.gather.prefilled();
                    if stepped.len() > 1 {
                        self.batched_prompts += stepped.len() as u64;
                    }
                    stepped
                } else {
                    let (before, started) = (r.seq.prefilled(), Instant::now());
                    let chunk = self.pace.chunk(&r.model, decoding, r.rate);
                    let step = r.span.in_scope(|| r.seq.prefill_step(&loaded.model, chunk));
                    r.rate = self.pace.prefilled(&r.model, r.seq.prefilled() - before, started.elapsed()).or(r.rate);
                    vec![(r, step)]
                }
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
            Ok(Step::Tokens(events)) => {
                if events.into_iter().all(|e| r.events.try_send(Ok(e)).is_ok()) {
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
