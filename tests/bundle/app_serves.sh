#!/usr/bin/env bash
# The macOS .app works on its own (run by .github/workflows/macos.yml; no Mac here): a copy of the
# bundle in a temporary folder, its `Contents/MacOS/mlx-manager serve` (Metal, with the
# mlx.metallib next to it) on the tiny model in Contents/Resources, with an empty environment from
# another cwd, answers a real chat completion (tests/bundle/serve_and_ask.sh). Also checked: the
# bundle is a menu-bar agent (LSUIElement) for macOS 14 and later, for arm64.
#
#   bash tests/bundle/app_serves.sh "PATH/TO/MLX Manager.app"
set -euo pipefail
app="${1:?usage: app_serves.sh APP_BUNDLE}"
[ -d "$app/Contents/MacOS" ] || { echo "FAIL: no app bundle at $app" >&2; exit 1; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

ditto "$app" "$tmp/MLX Manager.app"
contents="$tmp/MLX Manager.app/Contents"
plist="$contents/Info.plist"
[ "$(/usr/libexec/PlistBuddy -c 'Print :LSUIElement' "$plist")" = true ] || fail "LSUIElement is not true"
[ "$(/usr/libexec/PlistBuddy -c 'Print :LSMinimumSystemVersion' "$plist")" = 14.0 ] || fail "minimum macOS is not 14.0"
for f in "$contents/MacOS/mlx-manager-app" "$contents/MacOS/mlx-manager" "$contents/MacOS/mlx.metallib" \
  "$contents/Resources/models/tiny-llama/config.json"; do
  [ -e "$f" ] || fail "the bundle has no ${f#"$contents/"}"
done
lipo -archs "$contents/MacOS/mlx-manager-app" | grep -qw arm64 || fail "the app binary is not arm64"
# Nothing from the build machine's library paths (otool lists the dylibs each binary loads).
! otool -L "$contents/MacOS/mlx-manager" | grep -E "$HOME|/opt/homebrew|/usr/local" || fail "the CLI links outside the system"
bash "$root/tests/bundle/serve_and_ask.sh" "$contents/MacOS/mlx-manager" "$contents/Resources/models/tiny-llama" "$tmp/run"
echo "ok: $(basename "$app") serves from a copy"
