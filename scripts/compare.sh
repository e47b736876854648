#!/usr/bin/env bash
# Compares release binaries on the no-op path (a timer tick that finds the file fresh) and on a
# real refresh, against the repository's fake WeChat on 127.0.0.1, in the environment of
# bench/run.sh: hyperfine for time, /usr/bin/time -v for peak RSS. Used for the size steps in
# docs/PERFORMANCE.md ("the no-op path must not get slower").
#   scripts/compare.sh OLD_BINARY NEW_BINARY [MORE_BINARIES...]
# Needs: hyperfine, GNU time; valgrind for the instruction counts, which unlike times do not
# depend on what else the machine is doing (apt-get install hyperfine time valgrind).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,7p' "$0"; exit 2; }
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done
cd "$(dirname "$0")/.."
cargo build --quiet --example fake-wechat
target=${CARGO_TARGET_DIR:-target}

dir=$(mktemp -d /tmp/wxtoken-compare.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
mkfifo "$dir/fake.out"
"$target/debug/examples/fake-wechat" --listen 127.0.0.1:0 --exit-after 900 --quiet >"$dir/fake.out" &
pids+=($!)
read -r line <"$dir/fake.out"
url=${line##* }
printf 'demo-secret-not-a-real-one' >"$dir/secret"
chmod 600 "$dir/secret"
export WXTOKEN_APPID=wx1234567890abcdef WXTOKEN_SECRET_FILE=$dir/secret WXTOKEN_API_BASE=$url
export WXTOKEN_OUT=$dir/state/access_token.json RUST_LOG=warn
# As under systemd, whose services get a clean environment: the trust store is the system's
# bundle. (With SSL_CERT_DIR set too, a refresh also reads every hashed file there.)
unset SSL_CERT_FILE SSL_CERT_DIR

for b in "${bins[@]}"; do echo "== $b: $(stat -c %s "$b") bytes"; done
"${bins[0]}" refresh
# The refreshes write elsewhere: their legacy token would make the no-op runs fetch.
forced="refresh --force --api legacy --out $dir/force/access_token.json"
# Rounds of hyperfine, the binaries' order reversed every other round, so that what else the
# machine does weighs on all of them alike; per binary, the median of the rounds' medians.
rounds() { # ARGS RUNS
    local r cmds json=()
    for r in $(seq 1 "${ROUNDS:-6}"); do
        cmds=()
        for b in "${bins[@]}"; do cmds+=("$b $1"); done
        if [ $((r % 2)) = 0 ]; then
            for ((i = ${#cmds[@]} - 1, j = 0; j < i; i--, j++)); do
                t=${cmds[i]} cmds[i]=${cmds[j]} cmds[j]=$t
            done
        fi
        hyperfine -N --warmup 10 --runs "$2" --style none --export-json "$dir/r$r.json" "${cmds[@]}" >/dev/null 2>&1
        json+=("$dir/r$r.json")
    done
    python3 - "${json[@]}" <<'PY'
import json, statistics, sys
res = {}
for f in sys.argv[1:]:
    for b in json.load(open(f))["results"]:
        res.setdefault(b["command"].split()[0], []).append(b)
for name, runs in res.items():
    med = lambda k: statistics.median(r[k] for r in runs) * 1000
    print(f"{name}: median {med('median'):.2f} ms (rounds: "
          + ", ".join(f"{r['median'] * 1000:.2f}" for r in runs)
          + f"), min {min(r['min'] for r in runs) * 1000:.2f} ms, user {med('user'):.2f} ms, "
          f"system {med('system'):.2f} ms")
PY
}
echo "== no-op path (the file is fresh, no network call): ${ROUNDS:-6} rounds of 300 runs"
rounds refresh 300
echo "== refresh path (legacy API against the fake: HTTP call, validation, atomic write, fsyncs): ${ROUNDS:-6} rounds of 50 runs"
rounds "$forced" 50
echo "== peak memory (max RSS, KiB; median of 5 runs)"
for b in "${bins[@]}"; do
    for args in "refresh" "$forced"; do
        rss=$(for _ in 1 2 3 4 5; do
            /usr/bin/time -v "$b" $args 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'
        done | sort -n | sed -n 3p)
        echo "$b ${args%% --out*}: $rss"
    done
done
if command -v valgrind >/dev/null; then
    echo "== instructions executed (valgrind --tool=callgrind)"
    for b in "${bins[@]}"; do
        for args in "refresh" "$forced"; do
            n=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$b" $args 2>&1 |
                awk '/Collected/ {print $NF}')
            echo "$b ${args%% --out*}: $n"
        done
    done
fi
