#!/usr/bin/env bash
# Shared by the bundle tests (deb_serves.sh, app_serves.sh): runs a packaged `mlx-manager serve`
# on a packaged model with an empty environment (no LD_LIBRARY_PATH, no venv, HOME in WORKDIR) from
# WORKDIR (not the repository), on a free port, asks it for a chat completion over HTTP and checks
# the answer is a real one from that model, then stops it with SIGTERM, which must exit cleanly.
# With EXPECT_LIBMLX set (Linux), the running server must have mapped libmlx from there (a glob
# pattern). For the AppImage (appimage_serves.sh): SERVE_ENV, more VAR=value words for the empty
# environment; MODEL_DIR empty: no --model, BIN serves its own model, SERVE_MODEL_ID; SERVE_CHILD=1:
# BIN runs the server as its child (the AppImage runtime), which gets the SIGTERM, and BIN must
# then exit 0 too.
#
#   bash tests/bundle/serve_and_ask.sh BIN MODEL_DIR WORKDIR
set -euo pipefail
bin="$1" model="$2" work="$3"
pid="" server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; [ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
mkdir -p "$work/home" "$work/cwd"
cd "$work/cwd"
extra_env=(); read -r -a extra_env <<<"${SERVE_ENV:-}"
model_args=(); [ -z "$model" ] || model_args=(--model "$model")
model_id="${SERVE_MODEL_ID:-$(basename "$model")}"
env -i "HOME=$work/home" PATH=/usr/bin:/bin LANG=C.UTF-8 ${extra_env[@]+"${extra_env[@]}"} "$bin" serve \
  ${model_args[@]+"${model_args[@]}"} --port 0 --data-dir "$work/data" --no-hf-cache --key-storage file \
  >"$work/out.log" 2>"$work/err.log" &
pid=$!
for _ in $(seq 600); do
  grep -q '^listening on ' "$work/out.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/err.log" >&2; fail "serve exited before listening"; }
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$work/out.log")"
[ -n "$url" ] || fail "serve did not listen within 60 s"
server="$pid"
if [ -n "${SERVE_CHILD:-}" ]; then
  server="$(pgrep -P "$pid" | head -n 1)"
  [ -n "$server" ] || fail "$bin runs no server process"
fi
if [ -n "${EXPECT_LIBMLX:-}" ]; then
  mapped="$(grep -E '/libmlx\.so' "/proc/$server/maps" | awk '{print $6}' | sort -u)"
  # shellcheck disable=SC2053 # a pattern
  [[ "$mapped" == $EXPECT_LIBMLX ]] || fail "the server mapped libmlx from: ${mapped:-nowhere}"
fi
python3 - "$url" "$model_id" <<'PY'
import json, sys, urllib.request
url, model = sys.argv[1:]
body = {"model": model, "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 12, "temperature": 0}
req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                             {"content-type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    status, answer = r.status, json.load(r)
choice = answer["choices"][0]
text, usage = choice["message"]["content"], answer["usage"]
assert status == 200 and answer["object"] == "chat.completion", answer
assert answer["model"] == model, answer["model"]
assert isinstance(text, str) and text, f"empty answer: {answer}"
assert usage["completion_tokens"] >= 1 and usage["prompt_tokens"] >= 1, usage
assert choice["finish_reason"] in ("stop", "length"), choice
print(f"packaged server answered {usage['completion_tokens']} tokens: {text!r}")
PY
kill -TERM "$server"
status=0; wait "$pid" || status=$?
pid="" server=""
[ "$status" -eq 0 ] || fail "serve exited with $status on SIGTERM"
