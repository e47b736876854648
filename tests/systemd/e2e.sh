#!/usr/bin/env bash
# End-to-end tests under a real systemd. A cached minimal Debian 12 root (rootfs.sh) is copied,
# wxtoken is installed into the copy, the fake WeChat API runs on this host's 127.0.0.1, and
# systemd-nspawn boots the copy (sharing the host's network). A unit inside the container runs a
# check script, which writes its findings to a bind-mounted directory and powers the container
# off. This script prints the findings and exits non-zero when any check failed.
#
#   e2e.sh make        `make install DESTDIR=<copy>` plus configuration, then check-inside.sh
#   e2e.sh deb FILE    the .deb is installed inside the booted container: check-deb-inside.sh
#
# Needs root, systemd-nspawn (package systemd-container), debootstrap (first run only), make.
#
# Environment:
#   WXTOKEN_BIN        the wxtoken binary for `make` (default: $CARGO_TARGET_DIR/debug/wxtoken)
#   WXTOKEN_FAKE_BIN   the fake WeChat server (default: $CARGO_TARGET_DIR/debug/examples/fake-wechat)
#   WXTOKEN_GEN_DOCS   for `make`: the man pages' and completions' generator (default:
#                      $CARGO_TARGET_DIR/debug/examples/gen-docs); `deb` takes them from the package
#   WXTOKEN_E2E_TIMEOUT  seconds the booted container may take (default 300)
#   WXTOKEN_E2E_KEEP=1 keep the work directory (the container's root, logs) for inspection
#   WXTOKEN_TEST_CACHE, WXTOKEN_TEST_MIRROR: see rootfs.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
bin=${WXTOKEN_BIN:-$target/debug/wxtoken}
fake_bin=${WXTOKEN_FAKE_BIN:-$target/debug/examples/fake-wechat}
gen_docs=${WXTOKEN_GEN_DOCS:-$target/debug/examples/gen-docs}
boot_timeout=${WXTOKEN_E2E_TIMEOUT:-300}
mode=${1:-make}
deb=${2:-}

# Default account of the fake WeChat API.
APPID=wx1234567890abcdef
SECRET=demo-secret-not-a-real-one

log() { echo "e2e($mode): $*" >&2; }
die() { log "$*"; exit 1; }

case $mode in
    make) [ -x "$bin" ] || die "wxtoken binary $bin not found (cargo build)"
        [ -x "$gen_docs" ] || die "$gen_docs not found (cargo build --example gen-docs)" ;;
    deb) [ -f "$deb" ] || die "usage: e2e.sh deb FILE.deb (cargo deb)" ;;
    *) die "usage: e2e.sh make | e2e.sh deb FILE.deb" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn not installed (apt-get install systemd-container)"
[ -x "$fake_bin" ] || die "fake WeChat server $fake_bin not found (cargo build --example fake-wechat)"

t0=$(date +%s)
cache=$("$here/rootfs.sh")
t_cache=$(date +%s)

work=$(mktemp -d /var/tmp/wxtoken-e2e.XXXXXX)
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
t_copy=$(date +%s)

# --- The fake WeChat API on the host's loopback (the container shares the network) -------------
. "$here/fake.sh"
start_fake "$work/fake.log" --control 127.0.0.1:0
log "fake WeChat API at $url, its control endpoint at $control"

# conf NAME APPID SECRET API_BASE [extra lines...]: settings and secret as an admin writes them
# (into DIR, default the container's /etc/wxtoken).
conf() {
    local name=$1 appid=$2 secret=$3 base=$4 dir=${CONF_DIR:-$root/etc/wxtoken} f
    shift 4
    mkdir -p "$dir"
    {
        echo "WXTOKEN_APPID=$appid"
        echo "WXTOKEN_API_BASE=$base"
        echo "WXTOKEN_TIMEOUT=5"
        echo "WXTOKEN_MAX_TIME=30"
        echo "RUST_LOG=info"
        for l in "$@"; do echo "$l"; done
    } >"$dir/$name.conf"
    chmod 0644 "$dir/$name.conf"
    if [ "$name" = wxtoken ]; then f=$dir/secret; else f=$dir/$name.secret; fi
    (umask 077; printf '%s\n' "$secret" >"$f")
}

case $mode in
make)
    # A port where nothing listens, for the transient-failure check: bind one, then free it.
    closed_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 9)
    "$gen_docs" "$work/assets" >/dev/null
    make -s -C "$repo" install DESTDIR="$root" BIN="$bin" ASSETS="$work/assets" >"$work/make-install.log"
    conf wxtoken "$APPID" "$SECRET" "$url"                      # the single-account units
    conf shop "$APPID" "$SECRET" "$url"                         # wxtoken@shop
    conf bad "$APPID" "wrong-secret" "$url"                     # wxtoken@bad: errcode, exit 78
    conf down "$APPID" "$SECRET" "http://127.0.0.1:$closed_port" "WXTOKEN_MAX_TIME=5"  # exit 75
    # What the checks need from out here: the README's drop-in for WXTOKEN_GROUP, exactly as
    # printed, and where the fake's control endpoint is (the container shares this loopback).
    "$here/readme-block.sh" group-drop-in >"$root/root/group-drop-in.conf"
    echo "$control" >"$root/root/fake-control"
    echo "$APPID" >"$root/root/fake-appid"
    check=check-inside.sh
    ;;
deb)
    # The package goes in while the container runs (its postinst talks to systemd); the settings
    # the check script applies after installing it wait in /root/wxtoken-conf.
    install -Dm0644 "$deb" "$root/root/wxtoken.deb"
    CONF_DIR=$root/root/wxtoken-conf conf wxtoken "$APPID" "$SECRET" "$url"
    check=check-deb-inside.sh
    ;;
esac

# The checks run inside, as a unit started at boot; the container powers off when it ends.
install -Dm0755 "$here/$check" "$root/usr/local/libexec/wxtoken-e2e-check"
cat >"$root/etc/systemd/system/wxtoken-e2e-check.service" <<UNIT
[Unit]
Description=wxtoken end-to-end checks
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/libexec/wxtoken-e2e-check
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=$((boot_timeout - 30))s

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../wxtoken-e2e-check.service "$root/etc/systemd/system/multi-user.target.wants/"
# Nothing the checks do needs a login prompt on the console.
ln -sf /dev/null "$root/etc/systemd/system/console-getty.service"

# --- Boot ----------------------------------------------------------------------------------------
log "booting the container (timeout ${boot_timeout}s)"
t_boot=$(date +%s)
rc=0
timeout -k 20 "$boot_timeout" systemd-nspawn --register=no --keep-unit --quiet \
    --console=read-only -D "$root" --machine="wxtoken-e2e-$$" \
    --bind="$results:/results" --boot >"$work/console.log" 2>&1 || rc=$?
t_end=$(date +%s)
log "container exited with status $rc after $((t_end - t_boot)) s"

report=$results/report
status=0
if [ ! -s "$report" ]; then
    log "no report from inside the container; its console:"
    tail -n 80 "$work/console.log" >&2
    status=1
else
    cat "$report"
    if grep -q '^FAIL' "$report"; then status=1; fi
    if ! grep -q '^DONE' "$report"; then log "the checks did not finish"; status=1; fi
    if [ "$status" != 0 ]; then
        [ -s "$results/debug.log" ] && { log "debug output from inside:"; cat "$results/debug.log" >&2; }
        log "console (last lines):"; tail -n 40 "$work/console.log" >&2
    fi
fi
if [ "$status" != 0 ]; then log "fake server log:"; tail -n 20 "$work/fake.log" >&2; fi
log "timings: rootfs cache $((t_cache - t0)) s, copy $((t_copy - t_cache)) s, boot+checks $((t_end - t_boot)) s, total $((t_end - t0)) s"
exit "$status"
