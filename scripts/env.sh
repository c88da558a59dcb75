# Sourced by the scripts in this folder: where the project's caches live and what the build needs.
# Nothing here installs anything; scripts/setup does.
MLX_MANAGER_CACHE="${MLX_MANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-manager}"
export MLX_MANAGER_CACHE
export MLX_MANAGER_VENV="$MLX_MANAGER_CACHE/venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MLX_MANAGER_CACHE/target}"
export MLX_SYS_PYTHON="$MLX_MANAGER_VENV/bin/python3"
if [ -d "$MLX_MANAGER_VENV" ]; then
  MLX_SYS_MLX_DIR="$(ls -d "$MLX_MANAGER_VENV"/lib/python3*/site-packages/mlx 2>/dev/null | head -n 1)"
  export MLX_SYS_MLX_DIR
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# For the benchmark scripts only (never the tests or CI): Debian 12's OpenBLAS 0.3.21 does not
# recognise CPUs newer than itself (Intel Emerald Rapids, say) and falls back to its SSE3
# "Prescott" kernels, several times slower for matrix products. Our binaries switch to the
# AVX-512 or AVX2 kernels themselves (crates/engine/src/cpu_kernels.rs); the Python reference
# does not. So that a comparison measures the two programs and not their kernels, both sides
# then run with the kernels ours would pick (same libopenblas), and the script says so on stderr.
# BENCH_OPENBLAS_AS_DETECTED=1 measures as installed: ours switches, the reference keeps Prescott.
bench_openblas_kernels() {
  [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -z "${BENCH_OPENBLAS_AS_DETECTED:-}" ] || return 0
  local core flags kernels=""
  core="$("$MLX_SYS_PYTHON" -c 'import ctypes; b = ctypes.CDLL("libopenblas.so.0"); b.openblas_get_corename.restype = ctypes.c_char_p; print(b.openblas_get_corename().decode())')"
  [ "$core" = Prescott ] || return 0
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
  if has avx512f avx512cd avx512bw avx512dq avx512vl; then kernels=SkylakeX
  elif has avx2 fma; then kernels=Haswell
  fi
  if [ -n "$kernels" ]; then
    export OPENBLAS_CORETYPE=$kernels
    echo "bench: OpenBLAS falls back to its SSE3 (Prescott) kernels on this CPU; both sides run with OPENBLAS_CORETYPE=$kernels, the kernels mlx-manager switches to (BENCH_OPENBLAS_AS_DETECTED=1: as installed)" >&2
  fi
}
