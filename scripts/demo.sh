#!/usr/bin/env bash
# Quick start without a WeChat account: builds wxtoken, starts the fake WeChat API shipped in
# examples/ on 127.0.0.1, runs real refreshes against it into a temp directory and shows the files.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo is compiling wxtoken and the fake WeChat API (about 2 minutes on 2 cores, the first time)…"
cargo build --quiet --bin wxtoken --example fake-wechat
target=${CARGO_TARGET_DIR:-target}
wxtoken=$target/debug/wxtoken

# The scratch directory holds the (demo) secret: the EXIT trap removes it on every way out (bash
# runs it after Ctrl-C and SIGTERM too).
dir=$(mktemp -d "${TMPDIR:-/tmp}/wxtoken-demo.XXXXXX")
fake_pid=
trap '[ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$dir"' EXIT

# Port 0: the kernel picks a free port; the fake prints the URL it got on its first line.
mkfifo "$dir/fake.out"
"$target/debug/examples/fake-wechat" --listen 127.0.0.1:0 --exit-after 120 --quiet >"$dir/fake.out" &
fake_pid=$!
read -r line <"$dir/fake.out"
url=${line##* }
echo "== $line"

# The secret lives in a file only root (here: you) can read; never on the command line.
printf 'demo-secret-not-a-real-one\n' >"$dir/secret"
chmod 600 "$dir/secret"

run() {
    echo "== wxtoken refresh $*"
    "$wxtoken" refresh --appid wx1234567890abcdef --secret-file "$dir/secret" --api-base "$url" \
        --out "$dir/state/access_token.json" --out "$dir/state/access_token.php" \
        --ticket jsapi "$@" 2>&1 || echo "(exit status $?)"
}

run
echo "== $dir/state/access_token.json"
cat "$dir/state/access_token.json"
echo "== $dir/state/access_token.php"
cat "$dir/state/access_token.php"
echo "== $dir/state/jsapi_ticket.json"
cat "$dir/state/jsapi_ticket.json"
echo "== ls -l $dir/state"
ls -l "$dir/state"
# A second run finds the token fresh: no call to the (fake) WeChat.
run
# A wrong secret is a configuration error: exit 78, the good files stay as they were.
before=$(cat "$dir/state/access_token.json" "$dir/state/access_token.php" "$dir/state/jsapi_ticket.json")
printf 'wrong-secret\n' >"$dir/secret"
run --force
echo "== after the failed run: $dir/state/access_token.json"
cat "$dir/state/access_token.json"
echo "== ls -l $dir/state"
ls -l "$dir/state"
after=$(cat "$dir/state/access_token.json" "$dir/state/access_token.php" "$dir/state/jsapi_ticket.json")
if [ "$before" = "$after" ]; then
    echo "== the token, .php and ticket files are byte for byte the ones before the failed run"
else
    echo "== CHANGED: the failed run altered the files" >&2
    exit 1
fi
