#!/usr/bin/env bash
# Memory of `wxtoken refresh --every` over many runs: the resident set after 10 runs and after
# RUNS runs (default 10,000) of one process, against the repository's fake WeChat on 127.0.0.1.
# libfaketime runs the process's clock 100 times fast, so `--every 1` sleeps 10 ms and 10,000 runs
# take about two minutes; the token (7,200 s on the fake's clock, 72 s of the process's) is
# replaced every few thousand runs, so fetches are in the loop too.
# Usage: bench/every.sh [RUNS]. Needs: faketime (libfaketime), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000}
lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -1)
[ -n "$lib" ] || { echo "bench/every.sh needs libfaketime (apt-get install faketime)" >&2; exit 2; }
cargo build --quiet --release --bin wxtoken --example fake-wechat
target=${CARGO_TARGET_DIR:-target}
dir=$(mktemp -d /tmp/wxtoken-every.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
"$target/release/examples/fake-wechat" --listen 127.0.0.1:0 --control 127.0.0.1:0 \
    --exit-after 1800 --quiet >"$dir/fake.out" &
pids+=($!)
for _ in $(seq 50); do [ -s "$dir/fake.out" ] && break; sleep 0.1; done
url=$(head -1 "$dir/fake.out" | awk '{print $NF}')
printf 'demo-secret-not-a-real-one' >"$dir/secret"
chmod 600 "$dir/secret"
for v in $(env | sed -n 's/^\(WXTOKEN_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
# One info line per run ("still fresh" or "refreshed"): the run counter.
FAKETIME="+0 x100" LD_PRELOAD=$lib RUST_LOG=info "$target/release/wxtoken" refresh --every 1 \
    --appid wx1234567890abcdef --secret-file "$dir/secret" --api-base "$url" \
    --out "$dir/state/access_token.json" 2>"$dir/log" &
pid=$!
pids+=($pid)
count() { grep -c -E 'still fresh|refreshed ' "$dir/log" || true; }
rss_at() {
    while [ "$(count)" -lt "$1" ]; do
        kill -0 "$pid" 2>/dev/null || { echo "wxtoken --every died:" >&2; tail -5 "$dir/log" >&2; exit 1; }
        sleep 0.2
    done
    awk '/VmRSS/ {print $2}' "/proc/$pid/status"
}
start=$(date +%s)
early=$(rss_at 10)
late=$(rss_at "$runs")
took=$(( $(date +%s) - start ))
fetched=$(grep -c 'refreshed ' "$dir/log" || true)
kill -TERM "$pid"
wait "$pid" && status=0 || status=$?
python3 - "$early" "$late" "$runs" "$fetched" "$took" "$status" <<'PY'
import sys
early, late, runs, fetched, took, status = map(int, sys.argv[1:])
print(f"VmRSS after 10 runs: {early} KiB; after {runs} runs: {late} KiB "
      f"({(late - early) / early * 100:+.1f} %); {fetched} of them fetched a token; "
      f"{took} s; exit after SIGTERM: {status}")
sys.exit(0 if late <= early * 1.10 and status == 0 else 1)
PY
