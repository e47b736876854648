#!/usr/bin/env bash
# 200 hosts, one Redis (a benchmark, not a test): HOSTS output directories, all ticking in the same
# second, legacy API, against one redis-server and the fake WeChat (examples/fake-wechat.rs) on
# 127.0.0.1, over a simulated day. Writes docs/PERFORMANCE.md's fleet section (between the fleet
# markers) and docs/fleet-200.svg. Usage: bench/fleet.sh [HOSTS] [HOURS] [STEP]
# (default 200 hosts, 24 h, a tick every 600 simulated seconds; about 3 minutes on 2 cores).
#
# The day is scaled: a real timer ticks every 60 s, here every STEP s (144 ticks instead of 1,440,
# so the day takes minutes), with --margin 900 (>= STEP + 300) so that no token can expire between
# two ticks; the fetches a day do not depend on the tick. The fake's clock jumps STEP s per tick
# (its control endpoint's /advance), and Redis's clock as the fleet reads it jumps with it
# (WXTOKEN_TEST_FLEET_CLOCK, honoured by the test-clock feature only: this builds its own binary
# under $CARGO_TARGET_DIR/bench-clock), and so do the hosts' clocks (libfaketime), as the real
# clocks of a day would. Halfway through, WeChat revokes the token and an app on host 7 reports
# it (report-stale). KEEP=1 keeps the scratch directory (logs, ticks.csv).
# Needs: redis-server, redis-cli, faketime, python3 (standard library only), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/splice.sh
hosts=${1:-200}
hours=${2:-24}
step=${3:-600}
ticks=$((hours * 3600 / step))
margin=$((step + 300))
target=${CARGO_TARGET_DIR:-target}/bench-clock
CARGO_TARGET_DIR=$target cargo build --quiet --release --features test-clock --bin wxtoken --example fake-wechat
bin=$target/release/wxtoken
work=$(mktemp -d /tmp/wxtoken-fleet.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --maxclients 10000 >/dev/null &
pids+=($!)
"$target/release/examples/fake-wechat" --listen 127.0.0.1:0 --control 127.0.0.1:0 \
    --exit-after 100000 --quiet >"$work/fake.out" &
pids+=($!)
for _ in $(seq 100); do
    [ "$(grep -c listening\\\|control "$work/fake.out" 2>/dev/null)" = 2 ] &&
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
api=$(sed -n 's/^fake WeChat API listening on //p' "$work/fake.out")
control=$(sed -n 's/^fake WeChat control on //p' "$work/fake.out")
appid=wx1234567890abcdef
install -m 0600 /dev/stdin "$work/secret" <<<"demo-secret-not-a-real-one"
for i in $(seq 0 $((hosts - 1))); do mkdir -p "$work/h$i"; done

# One tick: every host at once; each records when it started and ended and how it exited.
tick() {
    local t=$1 i running=()
    for i in $(seq 0 $((hosts - 1))); do
        (
            s=$EPOCHREALTIME
            rc=0
            FAKETIME_DONT_FAKE_MONOTONIC=1 WXTOKEN_TEST_FLEET_CLOCK=$t \
                faketime -f "+${t}s" "$bin" refresh --appid "$appid" \
                --secret-file "$work/secret" --out "$work/h$i/access_token.json" --api legacy \
                --api-base "$api" --redis "redis://127.0.0.1:$port" --margin "$margin" \
                --max-time 30 --timeout 5 2>>"$work/h$i.log" || rc=$?
            echo "$s $EPOCHREALTIME $rc" >"$work/h$i.t"
        ) &
        running+=($!)
    done
    wait "${running[@]}"
}

redis_calls() {
    # Every command Redis ran since the last reset (those a script runs included), the INFO and
    # CONFIG that ask excluded; and the requests the hosts sent (EVAL and SET: at most, since
    # scripts' SETs count too).
    redis-cli -p "$port" info commandstats | tr -d '\r' |
        awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /cmdstat_(info|config)$/ { n += $3 }
            $1 ~ /^cmdstat_(eval|set)$/ { r += $3 } END { print n + 0 "," r + 0 }'
}

report_at=$((ticks / 2))
reporter=$((hosts > 7 ? 7 : hosts - 1))
echo "tick,t,wall_ms,slowest_ms,median_ms,redis_commands,redis_requests,token_calls,distinct_tokens,valid_files,failed_runs,event" >"$work/ticks.csv"
start=$(date +%s)
for k in $(seq 0 $((ticks - 1))); do
    t=$((k * step))
    [ "$k" = 0 ] || curl -fsS "$control/advance?secs=$step" >/dev/null
    event=""
    if [ "$k" = "$report_at" ]; then
        revoked=$(curl -fsS "$control/revoke?appid=$appid")
        "$bin" report-stale --out "$work/h$reporter/access_token.json" \
            "$(printf %s "$revoked" | sha256sum | cut -d' ' -f1)" 2>/dev/null
        event=report
    fi
    redis-cli -p "$port" config resetstat >/dev/null
    tick "$t"
    cmds=$(redis_calls) # two columns
    calls=$(curl -fsS "$control/calls?path=/cgi-bin/token")
    python3 - "$work" "$hosts" "$control" "$k" "$t" "$cmds" "$calls" "$event" >>"$work/ticks.csv" <<'EOF'
import json, statistics, sys, urllib.request
work, hosts, control, k, t, cmds, calls, event = sys.argv[1:]
hosts = int(hosts)
times, failed, tokens = [], 0, []
for i in range(hosts):
    s, e, rc = open(f"{work}/h{i}.t").read().split()
    times.append((float(s), float(e)))
    failed += rc != "0"
    try:
        tokens.append(json.load(open(f"{work}/h{i}/access_token.json"))["access_token"])
    except (OSError, ValueError, KeyError):
        tokens.append(None)
valid = {}
for tok in set(tokens) - {None}:
    with urllib.request.urlopen(f"{control}/valid?token={tok}") as r:
        valid[tok] = r.read().strip() == b"valid"
runs = [(e - s) * 1000 for s, e in times]
wall = (max(e for _, e in times) - min(s for s, _ in times)) * 1000
print(f"{k},{t},{wall:.0f},{max(runs):.0f},{statistics.median(runs):.0f},{cmds},{calls},"
      f"{len(set(tokens))},{sum(1 for x in tokens if valid.get(x))},{failed},{event}")
EOF
    tail -1 "$work/ticks.csv" >&2
done
took=$(($(date +%s) - start))

# The figures, the SVG, and docs/PERFORMANCE.md's section.
python3 - "$work/ticks.csv" "$hosts" "$hours" "$step" "$took" "$(nproc)" "$("$bin" --version)" \
    docs/fleet-200.svg >"$work/section.md" <<'EOF'
import csv, sys
path, hosts, hours, step, took, cores, version, svg_path = sys.argv[1:]
hosts, hours, step = int(hosts), int(hours), int(step)
rows = list(csv.DictReader(open(path)))
for r in rows:
    for f in ("tick", "t", "wall_ms", "slowest_ms", "median_ms", "redis_commands",
              "redis_requests", "token_calls",
              "distinct_tokens", "valid_files", "failed_runs"):
        r[f] = int(r[f])
calls = rows[-1]["token_calls"]
per_day = calls * 24 / hours
fetch_ticks = [r["tick"] for i, r in enumerate(rows)
               if r["token_calls"] > (rows[i - 1]["token_calls"] if i else 0)]
# Ticks, after a fetch, until every host's file holds a token WeChat accepts and all hold the same.
def settle(k):
    for r in rows[k:]:
        if r["valid_files"] == hosts and r["distinct_tokens"] == 1:
            return r["tick"] - k
    return None
rotations = [settle(k) for k in fetch_ticks if rows[k]["event"] != "report"]
report = next(r["tick"] for r in rows if r["event"] == "report")
after_report = settle(report)
cmds = [r["redis_commands"] for r in rows]
slowest = max(rows, key=lambda r: r["slowest_ms"])
failed = sum(r["failed_runs"] for r in rows)
print(f"Run on {__import__('time').strftime('%Y-%m-%d', __import__('time').gmtime())} ({cores} cores, "
      f"{took} s of wall time), `{version}`:\n")
print(f"    bench/fleet.sh {hosts} {hours} {step}\n")
print(f"{hosts} hosts (output directories) tick in the same second, legacy API, one redis-server, "
      f"the fake WeChat; {len(rows)} ticks {step} s apart on the fleet's clock ({hours} simulated "
      f"hours: the day scaled, see the script; `--margin {step + 300}`); halfway, WeChat revokes "
      f"the token and an app on one host reports it.\n")
print("| figure | measured | goal |")
print("|---|---|---|")
print(f"| WeChat token calls a day, whole fleet | {per_day:.1f} ({calls} in {hours} h) | as one host, ≤ 15 |")
reqs = [r["redis_requests"] for r in rows]
print(f"| Redis commands per tick, whole fleet (`INFO commandstats`, those run by scripts included) "
      f"| median {sorted(cmds)[len(cmds) // 2]}, max {max(cmds)} ({max(cmds) / hosts:.1f} per host) | |")
print(f"| requests the hosts sent per tick (EVAL and SET) | median {sorted(reqs)[len(reqs) // 2]}, "
      f"max {max(reqs)} ({max(reqs) / hosts:.1f} per host) | |")
print(f"| slowest host's run in a tick | {slowest['slowest_ms']} ms (tick {slowest['tick']}); "
      f"median of the ticks' slowest {sorted(r['slowest_ms'] for r in rows)[len(rows) // 2]} ms | |")
print(f"| a tick, first start to last end | max {max(r['wall_ms'] for r in rows)} ms | |")
print(f"| after a rotation, ticks until every file holds the new token | "
      f"{', '.join(str(x) for x in rotations) or 'no rotation'} (0: within the same tick) | ≤ 1 |")
print(f"| after one host's stale report, ticks until every file holds a valid token | "
      f"{after_report} | ≤ 1 |")
print(f"| runs that failed | {failed} of {hosts * len(rows)} | 0 |")
print(f"\n![Slowest host and Redis commands per tick](fleet-200.svg)\n")

# The SVG by hand: two panels over the simulated hours.
W, H, pad = 900, 420, 60
ph = (H - 3 * pad // 2) // 2
tmax = max(r["t"] for r in rows) or 1
def x(t):
    return pad + (W - 2 * pad) * t / tmax
def panel(top, key, label, colour):
    vmax = max(r[key] for r in rows) or 1
    y = lambda v: top + ph - ph * v / vmax
    pts = " ".join(f"{x(r['t']):.1f},{y(r[key]):.1f}" for r in rows)
    out = [f'<rect x="{pad}" y="{top}" width="{W - 2 * pad}" height="{ph}" fill="none" stroke="#999"/>',
           f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>',
           f'<text x="{pad}" y="{top - 6}" font-size="13">{label} (max {vmax})</text>',
           f'<text x="{pad - 6}" y="{top + 4}" font-size="11" text-anchor="end">{vmax}</text>',
           f'<text x="{pad - 6}" y="{top + ph}" font-size="11" text-anchor="end">0</text>']
    return out
body = panel(pad // 2 + 10, "slowest_ms", "slowest host's run per tick, ms", "#c0392b")
body += panel(pad + ph + 10, "redis_commands", f"Redis commands per tick ({hosts} hosts)", "#2471a3")
for k in fetch_ticks:
    r = rows[k]
    what = "report" if r["event"] == "report" else "fetch"
    body.append(f'<line x1="{x(r["t"]):.1f}" y1="{pad // 2 + 10}" x2="{x(r["t"]):.1f}" '
                f'y2="{pad + 2 * ph + 10}" stroke="#27ae60" stroke-dasharray="4 3"/>')
    body.append(f'<text x="{x(r["t"]) + 3:.1f}" y="{pad + 2 * ph + 24}" font-size="11" '
                f'fill="#27ae60">{what}</text>')
for h in range(0, hours + 1, max(1, hours // 6)):
    body.append(f'<text x="{x(h * 3600):.1f}" y="{H - 8}" font-size="11" text-anchor="middle">{h} h</text>')
svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
       f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n'
       + "\n".join(body) + "\n</svg>\n")
open(svg_path, "w").write(svg)
EOF
splice docs/PERFORMANCE.md fleet "$work/section.md"
cat "$work/section.md"
echo "docs/PERFORMANCE.md, docs/fleet-200.svg: fleet section updated" >&2
