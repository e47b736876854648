#!/usr/bin/env bash
# Benchmarks quoted in docs/benchmarks.md: run time of a fresh-file run and of a real refresh
# (hyperfine), peak memory (/usr/bin/time -v), and the run-time bound against a server that never
# answers. Everything talks to 127.0.0.1 only. Needs: hyperfine, GNU time (apt-get install hyperfine time).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --bin wxtoken
cargo build --quiet --example fake-wechat
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/wxtoken

dir=$(mktemp -d /tmp/wxtoken-bench.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
mkfifo "$dir/fake.out"
"$target/debug/examples/fake-wechat" --listen 127.0.0.1:0 --exit-after 600 --quiet >"$dir/fake.out" &
pids+=($!)
read -r line <"$dir/fake.out"
url=${line##* }
printf 'demo-secret-not-a-real-one' >"$dir/secret"
chmod 600 "$dir/secret"
export WXTOKEN_APPID=wx1234567890abcdef WXTOKEN_SECRET_FILE=$dir/secret WXTOKEN_API_BASE=$url
export WXTOKEN_OUT=$dir/state/access_token.json RUST_LOG=warn

echo "== binary: $(stat -c %s "$bin") bytes, $("$bin" --version)"
"$bin" refresh
hyperfine --warmup 5 --runs 200 -N "$bin refresh" --export-markdown "$dir/fresh.md" >/dev/null
echo "== fresh file, no network call:"; cat "$dir/fresh.md"
hyperfine --warmup 5 --runs 200 -N "$bin refresh --force --api legacy" --export-markdown "$dir/force.md" >/dev/null
echo "== real refresh (legacy API, new token, atomic write + fsyncs):"; cat "$dir/force.md"

echo "== peak memory"
for args in "refresh" "refresh --force --api legacy"; do
    rss=$(/usr/bin/time -v "$bin" $args 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}')
    echo "wxtoken $args: max RSS ${rss} KiB"
done

echo "== bound: a server that accepts and never answers (--timeout 10 --max-time 60 --retries 2)"
python3 - "$dir/port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
conns, end = [], time.time() + 200
s.settimeout(1)
while time.time() < end:
    try: conns.append(s.accept()[0])
    except socket.timeout: pass
PY
pids+=($!)
while [ ! -s "$dir/port" ]; do sleep 0.1; done
start=$(date +%s.%N)
code=0
WXTOKEN_API_BASE="http://127.0.0.1:$(cat "$dir/port"),http://127.0.0.1:$(cat "$dir/port")" \
    "$bin" refresh --force --timeout 10 --max-time 60 --retries 2 2>/dev/null || code=$?
echo "exit status $code after $(echo "$(date +%s.%N) - $start" | bc) s"
