//! How many threads OpenBLAS (libmlx's CPU matrix products on Linux) may use for a pass.
//!
//! OpenBLAS splits any product above M·N·K = 262,144 across all its threads, and a thread that
//! finishes spins (`sched_yield`) for a while waiting for more. For a small model's matrices the
//! hand-off costs more than the product: on this project's 2-core machines a 128-wide model
//! decoded a token in 0.43 ms with one thread and 0.91 ms with two, and the spinning thread took
//! a third of the server's CPU time under load. Large weights (a decode step is a read of them)
//! and long prompts still gain from every thread. The figures are in docs/PERFORMANCE.md.
//!
//! Elsewhere (macOS: Accelerate; the GPU; a BLAS without this entry point) nothing changes.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

/// Per-block weights from which a decode step (one read of them) gains from more threads.
const PARALLEL_WEIGHTS: usize = 1 << 20;
/// Multiply-adds per block of a pass from which more threads pay off.
const PARALLEL_WORK: usize = 48 << 20;

/// What one pass asks of the matrix products, to decide how many threads they get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassShape {
    /// Multiply-adds per position of one block's linear layers (= its weights).
    layer_weights: usize,
    /// Multiply-adds per position and per position attended to, in one block.
    attention_width: usize,
}

impl PassShape {
    /// From the hidden size, the query and key/value projection widths and the MLP width.
    pub(crate) fn new(hidden: usize, q: usize, kv: usize, intermediate: usize) -> PassShape {
        PassShape {
            layer_weights: hidden * (q + 2 * kv) + q * hidden + 3 * hidden * intermediate,
            attention_width: 2 * q,
        }
    }

    /// Whether `positions` new positions, each attending to up to `context` positions, should
    /// use all of OpenBLAS's threads.
    pub(crate) fn parallel(&self, positions: usize, context: usize) -> bool {
        let work = positions * (self.layer_weights + context * self.attention_width);
        self.layer_weights >= PARALLEL_WEIGHTS || work >= PARALLEL_WORK
    }

    /// Sets OpenBLAS's thread count for a pass of `positions` new positions attending to up
    /// to `context` positions each (only the products evaluated after this see it).
    pub(crate) fn apply(&self, positions: usize, context: usize) {
        if let Some(blas) = openblas() {
            blas.set(if self.parallel(positions, context) { blas.all } else { 1 });
        }
    }
}

type SetNumThreads = unsafe extern "C" fn(i32);
type GetNumThreads = unsafe extern "C" fn() -> i32;

struct OpenBlas {
    set_num_threads: SetNumThreads,
    /// The thread count OpenBLAS started with.
    all: i32,
    current: AtomicI32,
}

impl OpenBlas {
    fn set(&self, n: i32) {
        if self.current.swap(n, Ordering::Relaxed) != n {
            // SAFETY: OpenBLAS's own entry point; lowering the count below the threads it
            // started with only changes how many later products use.
            unsafe { (self.set_num_threads)(n) }
        }
    }
}

/// OpenBLAS's thread-count entry points, when the BLAS libmlx was linked against is OpenBLAS.
fn openblas() -> Option<&'static OpenBlas> {
    static BLAS: OnceLock<Option<OpenBlas>> = OnceLock::new();
    BLAS.get_or_init(find).as_ref()
}

#[cfg(target_os = "linux")]
fn find() -> Option<OpenBlas> {
    let set = symbol(c"openblas_set_num_threads")?;
    let get = symbol(c"openblas_get_num_threads")?;
    // SAFETY: when present, these are OpenBLAS's exported functions with these C signatures.
    unsafe {
        let set_num_threads: SetNumThreads = std::mem::transmute::<*mut libc::c_void, SetNumThreads>(set);
        let get_num_threads: GetNumThreads = std::mem::transmute::<*mut libc::c_void, GetNumThreads>(get);
        let all = get_num_threads();
        (all > 1).then(|| OpenBlas { set_num_threads, all, current: AtomicI32::new(all) })
    }
}

#[cfg(not(target_os = "linux"))]
fn find() -> Option<OpenBlas> {
    None
}

/// The address of `name` in the process's global symbol scope (OpenBLAS's exports, when libmlx
/// was linked against it).
#[cfg(target_os = "linux")]
pub(crate) fn symbol(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym only looks the NUL-terminated name up; using the address is the caller's part.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_models_run_short_passes_on_one_thread_and_large_ones_on_all() {
        // The bench's 128-wide model: a decode step, a 33-token prompt, four of them together
        // and a 128-token prompt were faster on one thread; a 512-token prompt on two.
        let tiny = PassShape::new(128, 128, 64, 352);
        assert!(!tiny.parallel(1, 2000));
        assert!(!tiny.parallel(33, 33));
        assert!(!tiny.parallel(4 * 33, 33));
        assert!(!tiny.parallel(128, 128));
        assert!(tiny.parallel(512, 512));
        // 512 wide: every pass, decode steps included, was faster on two.
        let wide = PassShape::new(512, 512, 256, 1408);
        assert!(wide.parallel(1, 1));
        assert!(wide.parallel(33, 33));
    }
}
