//! The engine sets OpenBLAS's thread count per pass (src/model/blas.rs): one thread for a small
//! model's short passes, where handing a product to a second thread costs more than it saves,
//! all of them for long prompts and large weights. Read back through OpenBLAS's own getter after
//! each generation. One test in this binary: the count is process-wide.

mod common;

use common::*;
use mlx_manager_engine::tiny::TinySpec;

/// OpenBLAS's current thread count, when libmlx's BLAS is OpenBLAS.
fn openblas_threads() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: dlsym on the global scope with a NUL-terminated name; the symbol, when present,
        // is OpenBLAS's `int openblas_get_num_threads(void)`.
        unsafe {
            let get = libc::dlsym(libc::RTLD_DEFAULT, c"openblas_get_num_threads".as_ptr());
            if get.is_null() {
                return None;
            }
            let get: unsafe extern "C" fn() -> i32 = std::mem::transmute(get);
            Some(get())
        }
    }
    #[cfg(not(target_os = "linux"))]
    None
}

fn prompt(len: usize, salt: usize) -> Vec<u32> {
    (0..len).map(|i| ((i * 7 + salt * 13) % 400) as u32 + 3).collect()
}

#[tokio::test]
async fn short_passes_of_a_small_model_use_one_blas_thread_and_long_or_wide_ones_all() {
    let tiny = load_tiny(TinySpec::bench(128, 2)).await;
    let Some(all) = openblas_threads().filter(|n| *n > 1) else {
        eprintln!("OpenBLAS with more than one thread is not what libmlx uses here: nothing to check");
        return;
    };
    // A 33-token prompt and a decode step of the 128-wide model: one thread.
    generate(&tiny.id, tokens(&prompt(33, 1)), greedy(2)).await.expect("generates");
    assert_eq!(openblas_threads(), Some(1), "a short pass of a small model runs its products on one thread");
    // A 600-token prompt of the same model: every thread.
    generate(&tiny.id, tokens(&prompt(600, 2)), greedy(1)).await.expect("generates");
    assert_eq!(openblas_threads(), Some(all), "a long prompt uses every thread");
    // A short pass again: back to one.
    generate(&tiny.id, tokens(&prompt(20, 3)), greedy(1)).await.expect("generates");
    assert_eq!(openblas_threads(), Some(1));
    // A 512-wide model's decode step reads ~3 M weights per block: every thread.
    let wide = load_tiny(TinySpec::bench(512, 1)).await;
    generate(&wide.id, tokens(&prompt(8, 4)), greedy(2)).await.expect("generates");
    assert_eq!(openblas_threads(), Some(all), "large weights use every thread");
}
