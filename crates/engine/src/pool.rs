//! Which models stay loaded: a cap on their number and a memory budget, least recently used
//! idle models evicted first, pinned and busy ones never.

use std::time::{Duration, Instant};

/// Limits of the model pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Most models loaded at once (default 4).
    pub max_loaded_models: usize,
    /// Bytes of weights allowed in memory (default 75 % of RAM where it can be read).
    pub memory_budget_bytes: Option<u64>,
    /// Unpinned models idle this long are unloaded (off by default); checked about once a second.
    pub idle_ttl: Option<std::time::Duration>,
    /// On the CPU, run a quantized model from a dequantized copy of its weights when that copy
    /// fits the budget beside the loaded models without evicting any (default on). libmlx's CPU
    /// quantized product works one row at a time on one thread: at Qwen2.5-0.5B's shapes a 4-bit
    /// product takes 4× the dense one for a decode step and 80× for a 256-token prefill, and
    /// 10–40× that again with bf16 scales (docs/PERFORMANCE.md). The copy holds the numbers
    /// mlx-lm's `dequantize_model` makes, so output equals mlx-lm's on the dequantized model;
    /// off, it equals mlx-lm's on the quantized one. The GPU's quantized products are fast:
    /// nothing changes there.
    pub dense_on_cpu: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_loaded_models: 4,
            memory_budget_bytes: total_memory().map(|m| m / 4 * 3),
            idle_ttl: None,
            dense_on_cpu: true,
        }
    }
}

/// Gives memory freed by unloaded models back to the OS: MLX's buffer cache, then the
/// allocator's free pages, which it would otherwise keep for a while (see [`crate::alloc`]).
pub(crate) fn release_memory() {
    let _ = mlx_rs::memory::clear_cache();
    crate::alloc::release();
}

/// Physical memory of this machine, if the OS tells.
pub fn total_memory() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kb: u64 = info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
    #[cfg(target_os = "macos")]
    {
        let mut size: u64 = 0;
        let mut len = std::mem::size_of::<u64>();
        let name = c"hw.memsize";
        // SAFETY: sysctlbyname writes at most `len` bytes into `size`, a u64 as hw.memsize is.
        let rc = unsafe {
            libc::sysctlbyname(name.as_ptr(), (&mut size as *mut u64).cast(), &mut len, std::ptr::null_mut(), 0)
        };
        (rc == 0).then_some(size)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        None
    }
}

/// How long a model may stay loaded while idle, set per model by a request's `keep_alive`
/// (it replaces the pool's default idle TTL for that model from then on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Unload after this much idle time (zero: as soon as it is idle).
    For(Duration),
    /// Never unload for idleness.
    Forever,
}

/// Whether a model idle for `idle` is due to be unloaded: never when pinned or busy; else by its own
/// keep-alive when a request set one, otherwise by the pool's default TTL (off when `None`).
pub(crate) fn idle_expired(
    idle: Duration,
    own: Option<KeepAlive>,
    default: Option<Duration>,
    pinned: bool,
    busy: bool,
) -> bool {
    if pinned || busy {
        return false;
    }
    match own {
        Some(KeepAlive::Forever) => false,
        Some(KeepAlive::For(ttl)) => idle >= ttl,
        None => default.is_some_and(|ttl| idle >= ttl),
    }
}

/// What the pool knows of one loaded model.
#[derive(Debug, Clone)]
pub(crate) struct Resident {
    pub(crate) id: String,
    pub(crate) bytes: u64,
    pub(crate) pinned: bool,
    pub(crate) busy: bool,
    pub(crate) last_used: Instant,
}

/// The most a model of `need` bytes of `bits`-bit weights takes dequantized: every packed value
/// grown to at most 32 bits (scales and unquantized tensors counted as if they grew too).
pub(crate) fn dense_need(need: u64, bits: i32) -> u64 {
    need.saturating_mul(32) / u64::from(bits.max(1).unsigned_abs())
}

/// Models to unload (least recently used first) so one more model of `need` bytes fits; or, when
/// even evicting every idle unpinned model is not enough, `(needed, available)` in bytes.
pub(crate) fn plan_eviction(resident: &[Resident], need: u64, config: &PoolConfig) -> Result<Vec<String>, (u64, u64)> {
    let mut candidates: Vec<&Resident> = resident.iter().filter(|r| !r.pinned && !r.busy).collect();
    candidates.sort_by_key(|r| r.last_used);
    let mut count = resident.len();
    let mut used: u64 = resident.iter().map(|r| r.bytes).sum();
    let fits = |count: usize, used: u64| {
        count < config.max_loaded_models.max(1) && config.memory_budget_bytes.is_none_or(|b| used + need <= b)
    };
    let mut evict = Vec::new();
    let mut next = candidates.into_iter();
    while !fits(count, used) {
        match next.next() {
            Some(r) => {
                evict.push(r.id.clone());
                count -= 1;
                used -= r.bytes;
            }
            None => {
                let budget = config.memory_budget_bytes.unwrap_or(u64::MAX);
                let kept: u64 = resident.iter().filter(|r| r.pinned || r.busy).map(|r| r.bytes).sum();
                return Err((need, budget.saturating_sub(kept)));
            }
        }
    }
    Ok(evict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(id: &str, bytes: u64, pinned: bool, busy: bool, age_s: u64) -> Resident {
        Resident { id: id.into(), bytes, pinned, busy, last_used: Instant::now() - Duration::from_secs(age_s) }
    }

    #[test]
    fn evicts_least_recently_used_idle_unpinned_first() {
        let config =
            PoolConfig { max_loaded_models: 3, memory_budget_bytes: None, idle_ttl: None, dense_on_cpu: false };
        let loaded = [r("a", 1, false, false, 10), r("b", 1, false, false, 30), r("c", 1, true, false, 60)];
        assert_eq!(plan_eviction(&loaded, 1, &config), Ok(vec!["b".to_string()]));
        let config =
            PoolConfig { max_loaded_models: 10, memory_budget_bytes: Some(250), idle_ttl: None, dense_on_cpu: false };
        let loaded = [r("a", 100, false, false, 10), r("b", 100, false, true, 30), r("c", 40, false, false, 60)];
        assert_eq!(plan_eviction(&loaded, 100, &config), Ok(vec!["c".to_string(), "a".to_string()]));
        assert_eq!(plan_eviction(&loaded, 200, &config), Err((200, 150)));
    }

    #[test]
    fn keep_alive_overrides_the_default_ttl_but_not_pins_or_busy_models() {
        let s = Duration::from_secs;
        // Default TTL only.
        assert!(!idle_expired(s(5), None, None, false, false));
        assert!(idle_expired(s(60), None, Some(s(60)), false, false));
        assert!(!idle_expired(s(59), None, Some(s(60)), false, false));
        // A request's keep_alive wins over the default, longer or shorter.
        assert!(!idle_expired(s(120), Some(KeepAlive::For(s(300))), Some(s(60)), false, false));
        assert!(idle_expired(s(0), Some(KeepAlive::For(s(0))), None, false, false));
        assert!(!idle_expired(s(86_400), Some(KeepAlive::Forever), Some(s(60)), false, false));
        // Pinned and busy models stay.
        assert!(!idle_expired(s(600), Some(KeepAlive::For(s(0))), Some(s(1)), true, false));
        assert!(!idle_expired(s(600), Some(KeepAlive::For(s(0))), Some(s(1)), false, true));
    }
}
