//! OpenBLAS's matrix-product kernels for this CPU (Linux).
//!
//! On Linux libmlx's CPU matrix products go through OpenBLAS, which picks its kernels for the CPU
//! it finds when it loads. A release older than the CPU does not recognise it and falls back to
//! its SSE3 "Prescott" kernels: Debian 12's OpenBLAS 0.3.21 does on Intel Emerald Rapids, where a
//! 132 × 128 × 352 product then takes 450 µs on one thread against 170 µs with the AVX2 kernels
//! and 110 µs with the AVX-512 ones (docs/PERFORMANCE.md). OpenBLAS reads `OPENBLAS_CORETYPE`
//! only in its initialiser, so the environment of the next start is the documented fix; [`select`]
//! runs that initialiser again in this process instead, with the kernels the CPU's features allow,
//! before anything has called OpenBLAS. Nothing changes when the user set `OPENBLAS_CORETYPE`,
//! when OpenBLAS recognised the CPU, or where the BLAS is not OpenBLAS (macOS: Accelerate).

use std::sync::OnceLock;

/// What [`select`] changed: the kernels OpenBLAS detected and the ones it runs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSwitch {
    /// OpenBLAS's name for the kernels it picked itself ("Prescott").
    pub detected: String,
    /// Its name for the kernels it runs after the switch ("SkylakeX", "Haswell").
    pub selected: String,
}

static SWITCHED: OnceLock<KernelSwitch> = OnceLock::new();

/// Switches OpenBLAS from its generic SSE3 kernels to the AVX-512 or AVX2 ones when it did not
/// recognise a CPU that has those instructions; returns what changed, if anything.
///
/// Call it first thing in `main`, before other threads start and before any MLX work: it sets
/// `OPENBLAS_CORETYPE` for the length of OpenBLAS's initialiser (the environment is not safe to
/// change while other threads may read it), and products already running would see the kernels
/// change under them. OpenBLAS's own worker threads, parked since it loaded, read neither.
pub fn select() -> Option<KernelSwitch> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let switch = linux::select()?;
        let _ = SWITCHED.set(switch.clone());
        Some(switch)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    None
}

/// The name of the kernels OpenBLAS runs now, where libmlx's BLAS is OpenBLAS.
pub fn current() -> Option<String> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        linux::core_name()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    None
}

/// Logs the kernels at engine start: which ones [`select`] switched to, or a warning when
/// OpenBLAS still runs its SSE3 kernels on a CPU with AVX2 and FMA or AVX-512 (a process that did not call
/// [`select`]; one whose `OPENBLAS_CORETYPE` asks for them is left alone).
pub(crate) fn report() {
    if let Some(s) = SWITCHED.get() {
        tracing::info!(
            detected = %s.detected,
            selected = %s.selected,
            "OpenBLAS did not recognise this CPU; matrix products run its {} kernels instead of the generic {} ones",
            s.selected,
            s.detected
        );
        return;
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if let Some(name) = linux::core_name() {
        match linux::better_kernels() {
            Some(better) if linux::is_fallback(&name) && std::env::var_os(CORETYPE).is_none() => tracing::warn!(
                openblas_core = %name,
                "OpenBLAS does not recognise this CPU and runs its SSE3 kernels; matrix products would be \
                 several times faster with OPENBLAS_CORETYPE={better} in the environment"
            ),
            _ => {}
        }
    }
}

/// The environment variable OpenBLAS's initialiser reads.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const CORETYPE: &str = "OPENBLAS_CORETYPE";

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux {
    use super::{KernelSwitch, CORETYPE};
    use crate::model::blas_symbol as symbol;

    type CoreName = unsafe extern "C" fn() -> *const libc::c_char;
    type Init = unsafe extern "C" fn();

    /// OpenBLAS's name for the kernels it runs (`openblas_get_corename`).
    pub(super) fn core_name() -> Option<String> {
        let f = symbol(c"openblas_get_corename")?;
        // SAFETY: OpenBLAS's `char *openblas_get_corename(void)`, which returns a static
        // NUL-terminated string.
        unsafe {
            let f = std::mem::transmute::<*mut libc::c_void, CoreName>(f);
            Some(std::ffi::CStr::from_ptr(f()).to_string_lossy().into_owned())
        }
    }

    /// The generic kernels OpenBLAS falls back to for a CPU it does not know.
    pub(super) fn is_fallback(name: &str) -> bool {
        name.eq_ignore_ascii_case("prescott")
    }

    /// The best kernels (by OpenBLAS's name for them) this CPU and OS can run, from AVX2 up.
    pub(super) fn better_kernels() -> Option<&'static str> {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512cd") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
            Some("SkylakeX")
        } else if has!("avx2") && has!("fma") {
            Some("Haswell")
        } else {
            None
        }
    }

    pub(super) fn select() -> Option<KernelSwitch> {
        if std::env::var_os(CORETYPE).is_some() {
            return None;
        }
        let detected = core_name()?;
        if !is_fallback(&detected) {
            return None;
        }
        let target = better_kernels()?;
        // Only DYNAMIC_ARCH builds (Debian's) have these; a build for one CPU has nothing to pick.
        let quit = symbol(c"gotoblas_dynamic_quit")?;
        let init = symbol(c"gotoblas_dynamic_init")?;
        // The caller runs before other threads start (see `super::select`), so nothing reads
        // the environment while it changes; it is restored before returning.
        std::env::set_var(CORETYPE, target);
        // SAFETY: OpenBLAS's `void gotoblas_dynamic_quit(void)` forgets the kernel table (it
        // only clears a pointer) and `void gotoblas_dynamic_init(void)` picks one again, reading
        // OPENBLAS_CORETYPE, and initialises its parameters: what OpenBLAS itself runs at load.
        unsafe {
            std::mem::transmute::<*mut libc::c_void, Init>(quit)();
            std::mem::transmute::<*mut libc::c_void, Init>(init)();
        }
        std::env::remove_var(CORETYPE);
        let selected = core_name()?;
        (!is_fallback(&selected)).then_some(KernelSwitch { detected, selected })
    }
}
