#!/usr/bin/env bash
# The Linux AppImage works on its own. Run as a program with APPIMAGE_EXTRACT_AND_RUN=1 (the AppImage
# runtime unpacks the image into a temporary folder and runs it from there: no FUSE, no install),
# `<the AppImage> serve` (the CLI, by the AppImage's own AppRun hook, scripts/bundle) serves
# the tiny model the image carries with an empty environment, another cwd and HOME, and answers a
# real chat completion over HTTP (tests/bundle/serve_and_ask.sh), libmlx mapped from inside the
# image; on SIGTERM the server and the runtime exit 0. Also checked, on an unpacked copy
# (--appimage-extract): what the CLI and libmlx link is inside the image (libmlx, OpenBLAS,
# gfortran...) except the base libraries every Debian 12 has (glibc, libstdc++, libgcc, and
# libgpg-error, which apt itself needs; linuxdeploy's exclude list leaves them to the system); and
# given no command (no argument, or options only) the AppImage starts the tray app (`--help`: all
# its libraries load, through AppImageKit's AppRun and the GTK hook).
#
#   bash tests/bundle/appimage_serves.sh PATH/TO/FILE.AppImage
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "${1:?usage: appimage_serves.sh FILE.AppImage}" ] || fail "no AppImage at $1"
img="$(readlink -f "$1")"
[ -x "$img" ] || fail "$img is not executable"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${MLX_MANAGER_VENV:-$HOME/.cache/mlx-manager/venv}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
clean=(env -i PATH=/usr/bin:/bin LANG=C.UTF-8)

(cd "$tmp" && "${clean[@]}" "$img" --appimage-extract >/dev/null) || fail "--appimage-extract failed"
sq="$tmp/squashfs-root"
for f in AppRun apprun-hooks/mlx-manager-cli.sh usr/bin/mlx-manager usr/bin/mlx-manager-app usr/lib/libmlx.so \
  "usr/lib/MLX Manager/models/tiny-llama/config.json" "usr/lib/MLX Manager/models/tiny-llama/model.safetensors"; do
  [ -e "$sq/$f" ] || fail "the AppImage has no $f"
done
ls "$sq"/*.desktop >/dev/null 2>&1 || fail "the AppImage has no desktop entry"

base='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1|libgpg-error\.so\.0)$'
for f in "$sq/usr/bin/mlx-manager" "$sq/usr/lib/libmlx.so"; do
  resolved="$("${clean[@]}" ldd "$f")"
  ! grep -q 'not found' <<<"$resolved" || fail "${f#"$sq"}: $(grep 'not found' <<<"$resolved")"
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || { path="$name"; name="$(basename "$name")"; }
    case "$path" in "$sq/"*) continue ;; "$venv"/* | "$root"/*) fail "${f#"$sq"}: $name comes from the build ($path)" ;; esac
    [[ "$(basename "$name")" =~ $base ]] || fail "${f#"$sq"}: $name is not in the AppImage ($path)"
  done <<<"$resolved"
done
grep -q 'libopenblas\.so\.0 => '"$sq"/ <<<"$("${clean[@]}" ldd "$sq/usr/lib/libmlx.so")" || fail "OpenBLAS is not in the AppImage"

# The tray app, as the desktop entry starts it (no command): all its libraries load.
"${clean[@]}" APPIMAGE_EXTRACT_AND_RUN=1 "TMPDIR=$tmp" "$img" --help | grep -q '^Usage: mlx-manager-app' \
  || fail "the AppImage does not start mlx-manager-app"

mkdir -p "$tmp/run/tmp"
SERVE_ENV="APPIMAGE_EXTRACT_AND_RUN=1 TMPDIR=$tmp/run/tmp" SERVE_CHILD=1 SERVE_MODEL_ID=tiny-llama \
  EXPECT_LIBMLX="$tmp/run/tmp/appimage_extracted_*/usr/lib/libmlx.so" \
  bash "$root/tests/bundle/serve_and_ask.sh" "$img" "" "$tmp/run"
echo "ok: $(basename "$img") serves its own model, run as an AppImage"
