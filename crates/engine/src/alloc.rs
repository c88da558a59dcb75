//! The process's memory allocator on Linux: jemalloc, linked with unprefixed symbols, so that it
//! is `malloc` for the whole process (libmlx and OpenBLAS included, not only Rust code).
//!
//! Why: MLX's CPU backend allocates each array's buffer with `malloc` on the thread that
//! evaluates the graph (the engine thread), and the buffer is freed on the stream thread that ran
//! the last kernel using it. glibc serves that producer/consumer pattern through locked arenas:
//! under load, a third of the engine thread's samples were `_int_malloc`, `malloc`,
//! `malloc_consolidate` and the arena mutex (perf, tiny model, one client, Intel Xeon).
//! jemalloc's per-thread caches hand freed blocks back to their arena in batches: the
//! allocator's share of the server's samples went from ~13 % to ~3.5 %, its CPU per
//! `max_tokens=1` request from 4.7 to 4.3 ms; idle RSS +2 MB (docs/PERFORMANCE.md).
//!
//! jemalloc keeps freed pages for a while (its decay time); [`release`] hands them back to the
//! OS at once, after a model is unloaded.

// Linked for its `malloc`/`free` symbols, which take precedence over glibc's.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use tikv_jemalloc_sys as _;

/// Returns the allocator's free pages to the OS (after an unload: weights are large and freed all
/// at once).
pub(crate) fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // `arena.<MALLCTL_ARENAS_ALL>.purge`: every arena's unused dirty pages, now.
        const PURGE_ALL: &std::ffi::CStr = c"arena.4096.purge";
        // SAFETY: a purge command takes no input and writes no output (all pointers null).
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                PURGE_ALL.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            tracing::debug!(rc, "jemalloc purge failed");
        }
    }
}
