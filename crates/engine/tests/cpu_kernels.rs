//! `cpu_kernels::select` (src/cpu_kernels.rs), which `mlx-manager` and the desktop app run first
//! thing: OpenBLAS must not be left on its generic SSE3 kernels on a CPU that can run its AVX2
//! or AVX-512 ones, and the engine must still generate what mlx-lm generates with the same
//! kernels. A test binary with its own `main` (harness = false), because the switch has to run
//! before any thread starts. Where OpenBLAS recognised the CPU nothing may change, and where the
//! BLAS is not OpenBLAS there is nothing to check.

mod common;

use common::*;
use mlx_manager_engine::cpu_kernels;
use mlx_manager_engine::tiny::TinyFamily;

const PROMPT: &[u32] = &[5, 100, 200, 300, 17, 42, 99, 3, 8];

fn main() {
    let detected = cpu_kernels::current();
    let switch = cpu_kernels::select();
    let Some(now) = cpu_kernels::current() else {
        assert_eq!(switch, None);
        println!("cpu_kernels: libmlx's BLAS is not OpenBLAS here; nothing to check");
        return;
    };
    let detected = detected.expect("OpenBLAS named its kernels before the switch too");
    println!("cpu_kernels: OpenBLAS detected {detected}, runs {now}; switch: {switch:?}");

    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("OPENBLAS_CORETYPE").is_none() {
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        if avx2 {
            assert!(!now.eq_ignore_ascii_case("prescott"), "OpenBLAS was left on its SSE3 kernels on an AVX2 CPU");
        }
    }
    match &switch {
        Some(s) => {
            assert!(detected.eq_ignore_ascii_case("prescott"), "only the generic fallback is replaced, not {detected}");
            assert_eq!((s.detected.as_str(), s.selected.as_str()), (detected.as_str(), now.as_str()));
        }
        None => assert_eq!(now, detected, "nothing switched, so the kernels are the ones OpenBLAS picked"),
    }

    // The switched library still computes the model: greedy tokens equal mlx-lm's with the same
    // kernels (an fp32 Llama, whose every linear layer is an OpenBLAS product).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (model, ours) = runtime.block_on(async {
        let m = load_tiny(spec(TinyFamily::Llama)).await;
        let ids = generate(&m.id, tokens(PROMPT), greedy(40)).await.expect("generates").ids;
        (m, ids)
    });
    let prompt: Vec<String> = PROMPT.iter().map(u32::to_string).collect();
    let path = model.path();
    let theirs = reference_with_env(
        &["greedy", "--model", path.to_str().unwrap(), "--tokens", &prompt.join(","), "--max-tokens", "40"],
        &[("OPENBLAS_CORETYPE", now.as_str())],
    );
    let theirs: Vec<u32> = serde_json::from_value(theirs["tokens"].clone()).unwrap();
    assert!(theirs.len() >= 32, "mlx-lm produced only {} tokens", theirs.len());
    assert_eq!(ours, theirs, "greedy tokens differ from mlx-lm's with the same OpenBLAS kernels ({now})");
    println!("cpu_kernels: ok");
}
