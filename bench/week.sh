#!/usr/bin/env bash
# A simulated week of timer ticks per API mode (examples/week.rs: the release binary under
# libfaketime against the fake WeChat on 127.0.0.1), table written into docs/PERFORMANCE.md
# between the week markers. Usage: bench/week.sh [DAYS] (default 7; a few minutes per mode).
# Needs: faketime (apt-get install faketime).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/splice.sh
days=${1:-7}
target=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --bin wxtoken --example week
out=$(mktemp /tmp/wxtoken-week.XXXXXX)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
"$target/release/examples/week" "$target/release/wxtoken" "$days" | tee "$out.table"
{
    echo
    echo "Run on $(date -u +%F) ($(nproc) cores, $(( $(date +%s) - start )) s of wall time for $days simulated days), \`$("$target/release/wxtoken" --version)\`:"
    echo
    echo '    bench/week.sh'"$( [ "$days" = 7 ] || echo " $days")"
    echo
    cat "$out.table"
    echo
    # The goals, checked on the table's own figures.
    awk -F'|' '$2 ~ /stable|legacy/ {
        api = $2; gsub(/ /, "", api); calls = $5 + 0; split($8, acc, "%"); gsub(/ /, "", acc[1]); ok = acc[1] + 0
        goal = api == "stable" ? 30 : 15
        printf "- %s: %.1f token calls answered a day (goal ≤ %d: %s); %s accepted outside excused windows (goal 100 %%: %s)\n",
            api, calls, goal, calls <= goal ? "met" : "**missed**", acc[1] "%", ok >= 100 ? "met" : "**missed**"
    }' "$out.table"
    echo
} >"$out"
rm -f "$out.table"
splice docs/PERFORMANCE.md week "$out"
# The README's summary: the goal lines, and where they come from.
{
    echo "- \`bench/week.sh\`, $(date -u +%F), seven simulated days of ticks per API mode (1 % of"
    echo "  ticks failing, a 30-minute outage, two unreported invalidations a day):"
    grep '^- ' "$out" | sed 's/^- /  /; s/$/;/' | sed '$ s/;$/./'
} >"$out.readme"
splice README.md readme-week "$out.readme"
rm -f "$out.readme"
echo "docs/PERFORMANCE.md, README.md: week table updated" >&2
