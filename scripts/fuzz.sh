#!/usr/bin/env bash
# Runs the cargo fuzz targets (fuzz/, see docs/RELIABILITY.md "Fuzzing"), each for SECONDS
# (default 600), one libFuzzer process at a time, starting from the seed corpus in fuzz/corpus/
# and keeping what it finds in target/fuzz-corpus/TARGET (never in the repository). Prints each
# target's final figures; a failing input lands in fuzz/artifacts/TARGET/ and stops the script.
# Needs: rustup toolchain install nightly; cargo install cargo-fuzz --locked.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(answer token_file ticket_file base_url times redis_url)
work=target/fuzz-corpus
cargo +nightly fuzz build
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    seeds=$(find "fuzz/corpus/$t" -type f | wc -l)
    echo "== $t: $secs s, $seeds seeds"
    status=0
    cargo +nightly fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$work/$t.log" 2>&1 || status=$?
    grep -E '^#[0-9]+\s+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done ' "$work/$t.log"
    echo "corpus now: $(find "$work/$t" -type f | wc -l) inputs"
    if [ "$status" != 0 ]; then
        grep -E 'panicked|SUMMARY|Test unit written' -A2 "$work/$t.log" || tail -20 "$work/$t.log"
        exit "$status"
    fi
done
