#!/usr/bin/env bash
# Speed and memory of wxtoken against seed 001's PHP way (bench/seed001.php) and `cat`, on one
# machine in one run, everything against the repository's fake WeChat on 127.0.0.1 (plain HTTP):
# hyperfine medians and their ratios, peak RSS (GNU time), binary size, the stale-report path
# without systemd, and the run-time bound against a server that never answers (about 60 s).
# Writes the results into docs/PERFORMANCE.md between the bench markers and prints them.
# Usage: bench/run.sh [RUNS] (default 200). Needs: hyperfine, GNU time, php-cli with php-curl, curl,
# jq, python3 (apt-get install hyperfine time php-cli php-curl curl jq python3).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/splice.sh
runs=${1:-200}
for tool in hyperfine /usr/bin/time php curl jq python3; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool" >&2; exit 2; }
done
php -r 'exit(function_exists("curl_init") ? 0 : 1);' || { echo "bench/run.sh needs php-curl" >&2; exit 2; }
cargo build --quiet --release --bin wxtoken --example fake-wechat
target=${CARGO_TARGET_DIR:-target}
bin=$(realpath "$target/release/wxtoken")
appid=wx1234567890abcdef

dir=$(mktemp -d /tmp/wxtoken-bench.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"' EXIT
mkfifo "$dir/fake.out"
"$target/release/examples/fake-wechat" --listen 127.0.0.1:0 --control 127.0.0.1:0 \
    --exit-after 900 --quiet >"$dir/fake.out" &
pids+=($!)
exec 3<"$dir/fake.out"
read -r line <&3; url=${line##* }
read -r line <&3; ctl=${line##* }
printf 'demo-secret-not-a-real-one' >"$dir/secret"
chmod 600 "$dir/secret"
# Only these settings steer the runs (nothing from the caller's WXTOKEN_* or proxies).
for v in $(env | sed -n 's/^\(WXTOKEN_[A-Z_]*\|[a-zA-Z_]*_proxy\|[A-Z_]*_PROXY\)=.*/\1/p'); do unset "$v"; done
export WXTOKEN_APPID=$appid WXTOKEN_SECRET_FILE=$dir/secret WXTOKEN_API_BASE=$url
export WXTOKEN_OUT=$dir/state/access_token.json RUST_LOG=warn
# As under systemd, whose services get a clean environment: the trust store, when one is needed, is
# the system's bundle (some shells set SSL_CERT_DIR as well, which would read every hashed file).
unset SSL_CERT_FILE SSL_CERT_DIR
export SEED001_API_BASE=$url SEED001_TOKEN_FILE=$dir/access_token.php
printf "<?php\nreturn array('access_token' => 'stale', 'expires_at' => 1);\n" >"$dir/stale.php"
cat >"$dir/make-stale.sh" <<SH
cp "$dir/stale.php" "$dir/access_token.php"
SH
# WeChat revokes the token the file holds and the app reports it, as one that got errcode 40001.
# wxtoken answers reports with at most one probe per 30 s and makes at most 20 force_refresh calls
# a day (on purpose), so before each timed run the script also clears that memory in the state
# file; otherwise only the first run of the series would fetch.
state=$dir/state/.wxtoken-state.json
cat >"$dir/revoke-and-report.sh" <<SH
set -e
jq '.last_probe_at = 0 | .force_refresh_at = [] | .probes_today = 0 | .report_probes_today = 0 | .periodic_probes_today = 0' "$state" >"$state.new"
mv "$state.new" "$state"
curl -sf "$ctl/revoke?appid=$appid" >/dev/null
jq -j .access_token "$WXTOKEN_OUT" | "$bin" report-stale - 2>/dev/null
SH

"$bin" refresh
php bench/seed001.php >/dev/null

h() { # name, hyperfine args...: runs the benchmark, keeps its JSON as $dir/NAME.json
    local name=$1; shift
    hyperfine --style none --warmup 5 --runs "$runs" -N --export-json "$dir/$name.json" "$@" >/dev/null
}
# cat and the fresh tick are a millisecond or two each, close enough for a change in the machine's
# load to decide the ratio: they run in alternating rounds (order swapped every round), and the
# ratio is the median of the rounds' ratios of medians; the table pools the rounds' runs. The
# order matters here (whichever runs second in a round tends to look faster): an even number of
# rounds weighs both orders alike.
rounds=${ROUNDS:-8}
[ $((rounds % 2)) = 0 ] || { echo "ROUNDS must be even" >&2; exit 2; }
for r in $(seq 1 "$rounds"); do
    pair=("cat $WXTOKEN_OUT" "$bin refresh")
    [ $((r % 2)) = 1 ] || pair=("$bin refresh" "cat $WXTOKEN_OUT")
    hyperfine --style none --warmup 5 --runs "$runs" -N --export-json "$dir/pair$r.json" \
        "${pair[@]}" >/dev/null
done
python3 - "$dir" "$rounds" <<'PY'
import json, statistics, sys
d, n = sys.argv[1], int(sys.argv[2])
times, ratios = {"cat": [], "noop": []}, []
for r in range(1, n + 1):
    res = {("cat" if x["command"].startswith("cat ") else "noop"): x
           for x in json.load(open(f"{d}/pair{r}.json"))["results"]}
    for k in times:
        times[k] += res[k]["times"]
    ratios.append(res["noop"]["median"] / res["cat"]["median"])
for k, t in times.items():
    json.dump({"results": [{"command": k, "median": statistics.median(t), "mean": statistics.mean(t),
                            "stddev": statistics.stdev(t), "min": min(t), "max": max(t),
                            "times": t}]}, open(f"{d}/{k}.json", "w"))
with open(f"{d}/noop-ratio", "w") as f:
    f.write("%.3f\n%s\n" % (statistics.median(ratios), ", ".join("%.3f" % x for x in ratios)))
PY
h php-noop "php bench/seed001.php"
h refresh "$bin refresh --force --api legacy"
h php-refresh --prepare "sh $dir/make-stale.sh" "php bench/seed001.php"
grep -q "'stale'" "$dir/access_token.php" && { echo "the PHP script did not refresh" >&2; exit 1; }
# The stale-report path: the report alone, then the refresh run it triggers (revoke + report in
# --prepare, so only the run is timed). Each of those runs must have replaced a revoked token.
digest=$(jq -j .access_token "$WXTOKEN_OUT" | sha256sum | cut -c1-64)
h report "$bin report-stale $digest"
# /revoke revokes the token the fake issued last (the PHP script's, so far): the first run goes
# back to the stable API (which hands out the stable token it issued earlier), the second makes the
# file's token the newest (force_refresh).
"$bin" refresh
"$bin" refresh --force-new
before=$(curl -sf "$ctl/calls?force_refresh=1")
h stale --prepare "sh $dir/revoke-and-report.sh" "$bin refresh"
after=$(curl -sf "$ctl/calls?force_refresh=1")
[ $((after - before)) -eq $((runs + 5)) ] \
    || { echo "stale runs: $((after - before)) force_refresh calls for $((runs + 5)) runs" >&2; exit 1; }
[ "$(curl -sf "$ctl/valid?token=$(jq -r .access_token "$WXTOKEN_OUT")")" = valid ] \
    || { echo "the file does not hold a valid token after the stale runs" >&2; exit 1; }

rss() { # peak RSS in KiB over 5 runs of the command (after its --prepare script, if any)
    local prep=$1 max=0 r; shift
    for _ in 1 2 3 4 5; do
        [ -z "$prep" ] || sh "$prep"
        r=$(/usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}')
        [ "$r" -gt "$max" ] && max=$r
    done
    echo "$max"
}
rss_cat=$(rss "" cat "$WXTOKEN_OUT")
rss_noop=$(rss "" "$bin" refresh)
rss_refresh=$(rss "" "$bin" refresh --force --api legacy)
rss_stale=$(rss "$dir/revoke-and-report.sh" "$bin" refresh)
rss_report=$(rss "" "$bin" report-stale "$(jq -j .access_token "$WXTOKEN_OUT" | sha256sum | cut -c1-64)")
"$bin" refresh 2>/dev/null
rss_php_noop=$(rss "" php bench/seed001.php)
rss_php_refresh=$(rss "$dir/make-stale.sh" php bench/seed001.php)

# The documented bound: a server that accepts and never answers, two base URLs, retries.
python3 - "$dir/port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
conns, end = [], time.time() + 200
s.settimeout(1)
while time.time() < end:
    try: conns.append(s.accept()[0])
    except socket.timeout: pass
PY
pids+=($!)
while [ ! -s "$dir/port" ]; do sleep 0.1; done
silent="http://127.0.0.1:$(cat "$dir/port")"
start=$(date +%s%N)
code=0
WXTOKEN_API_BASE="$silent,$silent" "$bin" refresh --force --timeout 10 --max-time 60 --retries 2 \
    2>/dev/null || code=$?
bound_s=$(( ($(date +%s%N) - start) / 1000000 ))

# Medians in ms, and the table.
med() { jq '.results[0].median * 1000' "$dir/$1.json"; }
row() { # label, name
    jq -r --arg l "$1" '.results[0] | "| \($l) | \(.median*1000*100|round/100) ms | \(.mean*1000*100|round/100) ± \(.stddev*1000*100|round/100) ms | \(.min*1000*100|round/100) / \(.max*1000*100|round/100) ms | \(.times|length) |"' "$dir/$2.json"
}
ratio() { echo "scale=3; $(med "$1") / $(med "$2")" | bc | sed 's/^\./0./'; }
verdict() { [ "$(echo "$1 <= $2" | bc)" = 1 ] && echo "met" || echo "**missed**"; }
r_noop=$(sed -n 1p "$dir/noop-ratio")
r_noop_rounds=$(sed -n 2p "$dir/noop-ratio")
r_refresh=$(ratio refresh php-refresh)
r_noop_php=$(ratio noop php-noop)
stale_total=$(echo "scale=2; ($(med report) + $(med stale)) / 1" | bc | sed 's/^\./0./')
peak=$(printf '%s\n' "$rss_noop" "$rss_refresh" "$rss_stale" "$rss_report" | sort -n | tail -1)
size=$(stat -c %s "$bin")
kib() { echo "$(echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') KiB ($(echo "scale=2; $1 / 1024" | bc | sed 's/^\./0./') MiB)"; }

out=$dir/bench.md
cat >"$out" <<MD

Run on $(date -u +%F), $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)),
$(hyperfine --version), $(php -r 'echo "PHP ", PHP_VERSION, " (curl ", curl_version()["version"], ")";'),
\`$("$bin" --version)\`, $runs runs after 5 warm-ups each ($rounds alternating rounds of $runs for
\`cat\` and the fresh tick). Regenerate with:

    bench/run.sh

| what | median | mean ± σ | min / max | runs |
|---|---|---|---|---|
$(row '`cat` of the token file (the floor)' cat)
$(row '`wxtoken refresh`, file fresh (lock, read, parse, no network)' noop)
$(row '`wxtoken refresh --force --api legacy` (HTTP call, validation, atomic write, 2 fsyncs)' refresh)
$(row 'seed 001 in PHP, cache fresh (`php bench/seed001.php`: include the cache file)' php-noop)
$(row 'seed 001 in PHP, cache stale (include, curl fetch, `file_put_contents`)' php-refresh)
$(row '`wxtoken report-stale DIGEST` (an app reports a rejected token)' report)
$(row '`wxtoken refresh` after that report (probe, 40001, stable force_refresh, write)' stale)

| goal | measured | |
|---|---|---|
| no-op ≤ 1.75 × \`cat\` | $r_noop × (median of the rounds' ratios of medians: $r_noop_rounds) | $(verdict "$r_noop" 1.75) |
| refresh ≤ 0.2 × the PHP script (cache stale) | $r_refresh × | $(verdict "$r_refresh" 0.2) |
| peak RSS ≤ 6 MiB (largest of the wxtoken rows below) | $(kib "$peak") | $(verdict "$peak" 6144) |
| release binary ≤ 2.5 MiB (2,621,440 bytes) | $(echo "$size" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') bytes | $(verdict "$size" 2621440) |

For comparison, wxtoken's fresh tick against the PHP script's cache hit: $r_noop_php ×.

| peak memory (max RSS over 5 runs, GNU time) | |
|---|---|
| \`cat\` | $(kib "$rss_cat") |
| \`wxtoken refresh\`, file fresh | $(kib "$rss_noop") |
| \`wxtoken refresh --force --api legacy\` | $(kib "$rss_refresh") |
| \`wxtoken report-stale\` | $(kib "$rss_report") |
| \`wxtoken refresh\` after a report of a revoked token | $(kib "$rss_stale") |
| PHP seed 001, cache fresh | $(kib "$rss_php_noop") |
| PHP seed 001, cache stale | $(kib "$rss_php_refresh") |

| other | |
|---|---|
| release binary | $(echo "$size" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') bytes ($(echo "scale=2; $size / 1048576" | bc) MiB) |
| from a stale report to a new token in the file, without systemd (median report + median refresh run) | $stale_total ms |
| a run against a server that accepts and never answers (2 base URLs, \`--timeout 10 --max-time 60 --retries 2\`) | exit $code after $(echo "scale=2; $bound_s / 1000" | bc) s |

MD
splice docs/PERFORMANCE.md bench "$out"
cat "$out"
# The README's summary of the same run.
ms() { echo "scale=1; $(med "$1") / 1" | bc | sed 's/^\./0./'; }
cat >"$dir/readme.md" <<MD
- \`bench/run.sh\`, $(date -u +%F), one machine, against the fake WeChat on 127.0.0.1 over plain
  HTTP: a tick that finds the file fresh takes $(ms noop) ms (median), $r_noop × a \`cat\` of the
  file (goal ≤ 1.75 ×: $(verdict "$r_noop" 1.75)), where seed 001's PHP cache hit takes $(ms php-noop) ms;
  a refresh takes $(ms refresh) ms, $r_refresh × seed 001's PHP fetch (goal ≤ 0.2 ×:
  $(verdict "$r_refresh" 0.2)); peak RSS $(kib "$peak") (goal ≤ 6 MiB: $(verdict "$peak" 6144)); the
  release binary $(echo "$size" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') bytes (goal ≤ 2.5 MiB: $(verdict "$size" 2621440)); a
  run against a server that accepts and never answers ends with exit $code after
  $(echo "scale=2; $bound_s / 1000" | bc) s (\`--max-time 60\`).
MD
splice README.md readme-bench "$dir/readme.md"
