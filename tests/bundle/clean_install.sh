#!/usr/bin/env bash
# The .deb on a clean Debian 12: a minimal bookworm made with debootstrap (nothing of the build
# machine in it), the package installed there with apt (its Depends pulled from Debian, no
# recommends), then the installed `mlx-manager serve` run inside it on the bundled model and asked
# for a chat completion (tests/bundle/serve_and_ask.sh, from the host: the chroot shares the
# network). Not part of scripts/test: it needs root and downloads ~250 MB from Debian (about two
# minutes); the release checklist in docs/RELEASING.md runs it.
# Given an AppImage instead: nothing is installed in the minimal bookworm; the AppImage is copied
# there and its `serve` (APPIMAGE_EXTRACT_AND_RUN=1, no FUSE) answers from its own tiny model, so
# the CLI needs nothing the image does not carry but a minimal Debian 12 (about a minute).
#
#   sudo bash tests/bundle/clean_install.sh PATH/TO/package.deb
#   sudo bash tests/bundle/clean_install.sh PATH/TO/FILE.AppImage
set -euo pipefail
deb="${1:?usage: clean_install.sh PACKAGE.deb|FILE.AppImage}"
[ "$(id -u)" -eq 0 ] || { echo "clean_install: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
sys="$tmp/bookworm"
trap 'umount "$sys/proc" 2>/dev/null || true; rm -rf "$tmp"' EXIT

debootstrap --variant=minbase bookworm "$sys" http://deb.debian.org/debian >"$tmp/debootstrap.log" 2>&1 \
  || { tail -5 "$tmp/debootstrap.log" >&2; exit 1; }
mount -t proc proc "$sys/proc"
if [[ "$deb" == *.AppImage ]]; then
  cp "$deb" "$sys/tmp/mlx-manager.AppImage"
  cat >"$tmp/in-chroot" <<EOF
#!/bin/sh
exec $(command -v chroot) "$sys" /usr/bin/env APPIMAGE_EXTRACT_AND_RUN=1 TMPDIR=/tmp /tmp/mlx-manager.AppImage "\$@"
EOF
  chmod +x "$tmp/in-chroot"
  SERVE_CHILD=1 SERVE_MODEL_ID=tiny-llama EXPECT_LIBMLX="*/appimage_extracted_*/usr/lib/libmlx.so" \
    bash "$root/tests/bundle/serve_and_ask.sh" "$tmp/in-chroot" "" "$sys/work"
  echo "ok: $(basename "$deb") serves on a clean Debian 12"
  exit 0
fi
cp "$deb" "$sys/tmp/mlx-manager.deb"
cp /etc/resolv.conf "$sys/etc/resolv.conf"
chroot "$sys" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends /tmp/mlx-manager.deb' >"$tmp/apt.log" 2>&1 \
  || { tail -20 "$tmp/apt.log" >&2; exit 1; }
chroot "$sys" /usr/bin/mlx-manager-app --help >/dev/null
# serve_and_ask.sh runs the command it is given with an empty environment; here that command
# enters the chroot first, so the binary, its libraries and the model are the installed ones.
cat >"$tmp/in-chroot" <<EOF
#!/bin/sh
exec $(command -v chroot) "$sys" /usr/bin/mlx-manager "\$@"
EOF
chmod +x "$tmp/in-chroot"
# (Its logs, and the data dir the server makes inside the chroot, live under the chroot's /work.)
bash "$root/tests/bundle/serve_and_ask.sh" "$tmp/in-chroot" "/usr/lib/MLX Manager/models/tiny-llama" "$sys/work"
echo "ok: $(basename "$deb") installs on a clean Debian 12 and serves"
