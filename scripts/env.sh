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
# "Prescott" kernels, several times slower for matrix products. When it does on a CPU with AVX2
# and FMA, both sides of a comparison (our engine and the Python reference, which load the same
# libopenblas) run with its Haswell (AVX2) kernels, and the script says so on stderr.
# BENCH_OPENBLAS_AS_DETECTED=1 measures with whatever OpenBLAS picked.
bench_openblas_kernels() {
  [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -z "${BENCH_OPENBLAS_AS_DETECTED:-}" ] || return 0
  local core
  core="$("$MLX_SYS_PYTHON" -c 'import ctypes; b = ctypes.CDLL("libopenblas.so.0"); b.openblas_get_corename.restype = ctypes.c_char_p; print(b.openblas_get_corename().decode())')"
  if [ "$core" = Prescott ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=Haswell
    echo "bench: OpenBLAS falls back to its SSE3 (Prescott) kernels on this CPU; both sides run with OPENBLAS_CORETYPE=Haswell (BENCH_OPENBLAS_AS_DETECTED=1: without)" >&2
  fi
}
