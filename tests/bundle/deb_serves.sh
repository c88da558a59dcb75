#!/usr/bin/env bash
# The Linux .deb works on its own: unpacked with dpkg-deb -x into a temporary folder (no install,
# no root), its `mlx-manager serve` runs from there with an empty environment (no LD_LIBRARY_PATH,
# no venv, another cwd: tests/bundle/serve_and_ask.sh), serves the tiny model the package
# carries, and answers a real chat completion over HTTP. Also checked: every library the packaged binaries name resolves inside the
# package or to a Debian package the .deb declares in Depends (what a clean Debian 12 installs),
# and the running server mapped libmlx from the package, not from the build's venv.
#
#   bash tests/bundle/deb_serves.sh PATH/TO/package.deb
set -euo pipefail
deb="${1:?usage: deb_serves.sh PACKAGE.deb}"
[ -f "$deb" ] || { echo "FAIL: no package at $deb" >&2; exit 1; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${MLX_MANAGER_VENV:-$HOME/.cache/mlx-manager/venv}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

dpkg-deb -x "$deb" "$tmp/pkg"
bin="$tmp/pkg/usr/bin/mlx-manager"
model="$tmp/pkg/usr/lib/MLX Manager/models/tiny-llama"
for f in "$bin" "$tmp/pkg/usr/bin/mlx-manager-app" "$model/config.json" "$model/model.safetensors"; do
  [ -e "$f" ] || fail "the package has no ${f#"$tmp/pkg"}"
done
clean=(env -i PATH=/usr/bin:/bin LANG=C.UTF-8)

# Libraries: resolved with the empty environment, each one inside the package or owned by a
# package the .deb depends on.
depends=" $(dpkg-deb -f "$deb" Depends | tr -d ' ' | tr ',|' '  ') "
for f in "$bin" "$tmp/pkg/usr/bin/mlx-manager-app" "$tmp/pkg/usr/lib/mlx-manager/libmlx.so"; do
  resolved="$("${clean[@]}" ldd "$f")"
  ! grep -q 'not found' <<<"$resolved" || fail "${f#"$tmp/pkg"}: $(grep 'not found' <<<"$resolved")"
  for name in $(patchelf --print-needed "$f" 2>/dev/null || readelf -d "$f" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    path="$(awk -v n="$name" '$1 == n && $2 == "=>" {print $3}' <<<"$resolved")"
    [ -n "$path" ] || { [[ "$name" == ld-linux* ]] && continue; fail "${f#"$tmp/pkg"}: $name not resolved"; }
    case "$path" in
      "$tmp/pkg/"*) continue ;;
      "$venv"/* | "$root"/*) fail "${f#"$tmp/pkg"}: $name comes from the build ($path)" ;;
    esac
    owner="$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path")"
    owner="${owner%%:*}"
    [[ "$owner" == libopenblas0-* ]] && owner=libopenblas0
    [[ "$depends" == *" $owner "* ]] || fail "${f#"$tmp/pkg"}: $name is in $owner, which the package does not depend on"
  done
done

# The app itself starts (all its libraries load; --help needs no display), and has its desktop entry.
"${clean[@]}" "$tmp/pkg/usr/bin/mlx-manager-app" --help >/dev/null || fail "mlx-manager-app --help failed"
ls "$tmp/pkg/usr/share/applications/"*.desktop >/dev/null 2>&1 || fail "the package has no desktop entry"

EXPECT_LIBMLX="$tmp/pkg/usr/lib/mlx-manager/libmlx.so" bash "$root/tests/bundle/serve_and_ask.sh" "$bin" "$model" "$tmp/run"
echo "ok: $(basename "$deb") serves from an unpacked copy"
