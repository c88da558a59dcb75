//! Loading models into the pool, and the loads that wait (in order, bounded in number and time)
//! for running requests to finish when only busy models stand in the way.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::Span;

use super::{Actor, ModelInfo};
use crate::error::{EngineError, Result};
use crate::loaded::load_model;
use crate::pool::{plan_eviction, Resident};
use crate::progress::LoadState;

/// Most loads waiting at once; more fail at once with `InsufficientMemory`.
const MAX_WAITING: usize = 32;
/// Longest a load waits (callers usually give up sooner: their request's deadline).
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Bytes of a model folder's weight files (what loading it will take).
fn weights_size(path: &Path) -> u64 {
    crate::model::weight_files(path)
        .map(|files| files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// A load waiting for busy models to become evictable.
pub(super) struct WaitingLoad {
    id: String,
    path: PathBuf,
    /// Bytes of its weight files (read once, when the load arrived).
    need: u64,
    pin: bool,
    reply: oneshot::Sender<Result<ModelInfo>>,
    span: Span,
    since: Instant,
}

/// Loads waiting, oldest first.
#[derive(Default)]
pub(super) struct LoadQueue(VecDeque<WaitingLoad>);

impl Actor {
    /// A `Load` command: answered now, or queued behind busy models.
    pub(super) fn load(
        &mut self,
        id: String,
        path: PathBuf,
        pin: bool,
        reply: oneshot::Sender<Result<ModelInfo>>,
        span: Span,
    ) {
        let may_wait = self.waiting.0.len() < MAX_WAITING;
        let loaded = self.models.contains_key(&id);
        let need = if loaded { 0 } else { weights_size(&path) };
        // Loads queue in order: a new one goes behind those already waiting (unless loaded).
        let result = if self.waiting.0.is_empty() || loaded {
            span.in_scope(|| self.try_load(&id, &path, need, pin, may_wait))
        } else if may_wait && self.fits_when_idle(need) {
            Ok(None)
        } else {
            span.in_scope(|| self.try_load(&id, &path, need, pin, false))
        };
        match result {
            Ok(Some(info)) => {
                let _ = reply.send(Ok(info));
            }
            Ok(None) => {
                tracing::info!(parent: &span, model = %id, "waiting for running requests to free memory");
                self.waiting.0.push_back(WaitingLoad { id, path, need, pin, reply, span, since: Instant::now() });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Retries waiting loads in order; stops at the first that still has to wait.
    pub(super) fn retry_waiting(&mut self) {
        while let Some(w) = self.waiting.0.pop_front() {
            if w.reply.is_closed() {
                continue; // its request gave up (deadline or client gone)
            }
            let expired = w.since.elapsed() >= MAX_WAIT;
            match w.span.in_scope(|| self.try_load(&w.id, &w.path, w.need, w.pin, !expired)) {
                Ok(Some(info)) => {
                    let _ = w.reply.send(Ok(info));
                }
                Ok(None) => {
                    self.waiting.0.push_front(w);
                    return;
                }
                Err(e) => {
                    let _ = w.reply.send(Err(e));
                }
            }
        }
    }

    /// The loaded models as the pool planner sees them (`all_idle`: as if no request ran).
    fn residents(&self, all_idle: bool) -> Vec<Resident> {
        self.models
            .values()
            .map(|m| Resident {
                id: m.info.id.clone(),
                bytes: (m.info.weight_bytes + self.kv_cache_bytes(&m.info.id)) as u64,
                pinned: m.info.pinned,
                busy: !all_idle && self.busy(&m.info.id),
                last_used: m.last_used,
            })
            .collect()
    }

    /// Whether `need` bytes would fit once every running request has finished.
    fn fits_when_idle(&self, need: u64) -> bool {
        plan_eviction(&self.residents(true), need, &self.pool).is_ok()
    }

    /// Whether a model of quantization `q` (`need` bytes of files) runs from a dequantized copy:
    /// on the CPU where the pool allows it, when the copy fits beside the loaded models without
    /// evicting any (see `PoolConfig::dense_on_cpu`).
    fn dense_fits(&self, q: crate::config::Quantization, need: u64) -> bool {
        if !self.pool.dense_on_cpu || !crate::model::on_cpu().unwrap_or(false) {
            return false;
        }
        let dense = crate::pool::dense_need(need, q.bits);
        matches!(plan_eviction(&self.residents(false), dense, &self.pool), Ok(evict) if evict.is_empty())
    }

    pub(super) fn has_waiting_loads(&self) -> bool {
        !self.waiting.0.is_empty()
    }

    /// Loads (or finds) a model of `need` bytes, making room first within the pool's limits.
    /// `Ok(None)`: it does not fit now but will once running requests end (only when `may_wait`).
    fn try_load(&mut self, id: &str, path: &Path, need: u64, pin: bool, may_wait: bool) -> Result<Option<ModelInfo>> {
        let id = id.to_string();
        if let Some(loaded) = self.models.get_mut(&id) {
            let newly_pinned = pin && !loaded.info.pinned;
            loaded.info.pinned |= pin;
            loaded.last_used = Instant::now();
            let info = loaded.info();
            if newly_pinned {
                self.changed();
            }
            return Ok(Some(info));
        }
        let mut plan = plan_eviction(&self.residents(false), need, &self.pool);
        // Kept prompt caches are cheap to rebuild: they go before any model does.
        let needs_room = !matches!(&plan, Ok(evict) if evict.is_empty());
        if needs_room && self.models.values().any(|m| m.prompt_cache.is_some()) {
            for m in self.models.values_mut() {
                m.prompt_cache = None;
            }
            crate::pool::release_memory();
            plan = plan_eviction(&self.residents(false), need, &self.pool);
        }
        let evict = match plan {
            Ok(evict) => evict,
            Err((needed_bytes, available_bytes)) => {
                // Would it fit once the busy models are idle again? Then wait for them.
                if may_wait && self.fits_when_idle(need) {
                    return Ok(None);
                }
                return Err(EngineError::InsufficientMemory { model: id, needed_bytes, available_bytes });
            }
        };
        let evicted = !evict.is_empty();
        for victim in evict {
            tracing::info!(model = %victim, "evicted to make room");
            self.models.remove(&victim);
            self.progress.publish(&victim, LoadState::NotLoaded);
        }
        if evicted {
            crate::pool::release_memory();
            self.changed();
        }
        let started = Instant::now();
        self.progress.publish(&id, LoadState::Loading { fraction: 0.0 });
        let progress = self.progress.clone();
        let result = load_model(&id, path, &|q| self.dense_fits(q, need), &mut |fraction| {
            progress.publish(&id, LoadState::Loading { fraction: fraction.min(0.99) })
        });
        let mut loaded = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                self.progress.publish(&id, LoadState::Failed { message: e.to_string() });
                return Err(e);
            }
        };
        self.progress.publish(
            &id,
            LoadState::Ready {
                weight_bytes: loaded.info.weight_bytes as u64,
                quantization: loaded.info.quantization,
                dequantized: loaded.info.dequantized,
                load_ms: started.elapsed().as_millis() as u64,
            },
        );
        loaded.info.pinned = pin;
        let info = loaded.info();
        self.models.insert(id, loaded);
        self.changed();
        Ok(Some(info))
    }
}
