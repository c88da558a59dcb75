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
