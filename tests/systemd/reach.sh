#!/usr/bin/env bash
# The release tarball on a host it was not built on: a cached Debian 11 (bullseye, glibc 2.31) root
# with cron (rootfs.sh bullseye), copied, entered with systemd-nspawn WITHOUT booting it (no systemd
# runs inside, as on a host without systemd), sharing this host's network: the fake WeChat API
# runs on this host's 127.0.0.1. reach-inside.sh does the checks and writes "ok"/"FAIL" lines.
#
#   reach.sh portable TARBALL NATIVE_BIN   the tarball's binary: --version and a real refresh; the
#                                          natively built NATIVE_BIN fails with "GLIBC_2.3x not found"
#   reach.sh cron TARBALL                  install.sh without systemd (user, state directory,
#                                          /etc/cron.d/wxtoken), cron started: within ~70 s the token
#                                          file exists, wxtoken:wxtoken 0640, and cron mailed nothing
#
# Environment: WXTOKEN_FAKE_BIN (the fake WeChat server), WXTOKEN_TEST_CACHE, WXTOKEN_TEST_MIRROR
# (rootfs.sh), WXTOKEN_E2E_KEEP=1 keeps the work directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=${1:?usage: reach.sh portable TARBALL NATIVE_BIN | reach.sh cron TARBALL}
tarball=${2:?tarball}
native=${3:-}
fake_bin=${WXTOKEN_FAKE_BIN:?WXTOKEN_FAKE_BIN: the fake WeChat server}

log() { echo "reach($mode): $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -f "$tarball" ] || die "$tarball not found (make dist)"
case $mode in
    portable) [ -x "$native" ] || die "native binary $native not found" ;;
    cron) ;;
    *) die "unknown mode $mode" ;;
esac

t0=$(date +%s)
cache=$("$here/rootfs.sh" bullseye)
t_cache=$(date +%s)
work=$(mktemp -d /var/tmp/wxtoken-reach.XXXXXX)
fake_pid=
cleanup() {
    if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fi
    if [ "${WXTOKEN_E2E_KEEP:-}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 143" TERM INT HUP

root=$work/root
results=$work/results
mkdir -p "$results"
cp -a --reflink=auto "$cache" "$root"

. "$here/fake.sh"
start_fake "$work/fake.log"

install -m0644 "$tarball" "$root/root/wxtoken.tar.gz"
[ -n "$native" ] && install -Dm0755 "$native" "$root/root/native/wxtoken"
install -m0755 "$here/reach-inside.sh" "$root/root/reach-inside.sh"

log "fake WeChat API at $url; entering the Debian 11 root (not booted)"
t_run=$(date +%s)
rc=0
timeout -k 10 240 systemd-nspawn --quiet --register=no --keep-unit --as-pid2 -D "$root" \
    --bind="$results:/results" -E WXTOKEN_TEST_URL="$url" \
    /root/reach-inside.sh "$mode" >"$work/console.log" 2>&1 || rc=$?
t_end=$(date +%s)

status=0
if [ ! -s "$results/report" ]; then
    log "no report from inside (nspawn exit $rc):"; tail -n 40 "$work/console.log" >&2; status=1
else
    cat "$results/report"
    grep -q '^FAIL' "$results/report" && status=1
    grep -q '^DONE' "$results/report" || { log "the checks did not finish (nspawn exit $rc)"; status=1; }
fi
if [ "$status" != 0 ]; then
    [ -s "$results/debug.log" ] && { log "debug output from inside:"; cat "$results/debug.log" >&2; }
    log "console:"; tail -n 30 "$work/console.log" >&2
    log "fake server log:"; tail -n 20 "$work/fake.log" >&2
fi
log "timings: rootfs cache $((t_cache - t0)) s, checks $((t_end - t_run)) s, total $((t_end - t0)) s"
exit "$status"
