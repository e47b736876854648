#!/usr/bin/env bash
# Build (once) and print the path of a cached minimal Debian 12 root for the systemd end-to-end test.
#
#   tests/systemd/rootfs.sh            -> prints the cache directory (building it when missing)
#   tests/systemd/rootfs.sh bullseye   -> the same for a Debian 11 root with cron (tests/systemd/
#                                         reach.sh: the portable binary and the cron install)
#
# Environment:
#   WXTOKEN_TEST_CACHE   cache root (default /var/cache/wxtoken-test); the tree is <cache>/bookworm
#   WXTOKEN_TEST_MIRROR  Debian mirror URL; default: the one this machine's apt uses
#                        (/etc/apt/sources.list and /etc/apt/sources.list.d/*)
#
# The tree is built into a temporary directory next to the cache and renamed into place only when
# debootstrap succeeded, so a killed run never leaves a half-built cache behind. A stamp file inside
# records what was asked for; a different request (new package list) rebuilds.
set -euo pipefail

case ${1:-bookworm} in
bookworm)
    SUITE=bookworm
    # man-db, bash-completion, zsh, fish: the checks ask them whether they find the installed man
    # pages and completions (fish brings python3: about 70 MB more than systemd alone).
    INCLUDE=systemd,systemd-sysv,dbus,man-db,bash-completion,zsh,fish
    STAMP_CONTENT="suite=$SUITE variant=minbase include=$INCLUDE v2"
    NAME=$SUITE
    ;;
bullseye)
    # Debian 11 (glibc 2.31): older than the build host's glibc, newer than 2.17. cron for the
    # install without systemd; no systemd runs there (it is not booted).
    SUITE=bullseye
    INCLUDE=cron
    STAMP_CONTENT="suite=$SUITE variant=minbase include=$INCLUDE v1"
    NAME=bullseye-cron
    ;;
*) echo "rootfs.sh: unknown root '$1' (bookworm, bullseye)" >&2; exit 2 ;;
esac

cache_root=${WXTOKEN_TEST_CACHE:-/var/cache/wxtoken-test}
tree=$cache_root/$NAME
stamp=.wxtoken-test-rootfs

log() { echo "rootfs: $*" >&2; }

# The Debian mirror apt on this machine is configured with (one-line or deb822 format).
find_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        # deb [opts] URL SUITE COMPONENTS...
        awk -v s="$SUITE" '$1 == "deb" { sub(/^deb +(\[[^]]*\] +)?/, ""); if ($2 == s) { print $1; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        # deb822 stanzas: take URIs of a stanza whose Suites lists the plain suite.
        awk -v s="$SUITE" '
            /^[[:space:]]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
            END { if (uri != "" && hit) print uri }' "$f"
    done
}

if [ -f "$tree/$stamp" ] && [ "$(cat "$tree/$stamp")" = "$STAMP_CONTENT" ]; then
    echo "$tree"
    exit 0
fi

command -v debootstrap >/dev/null || { log "debootstrap not installed (apt-get install debootstrap)"; exit 3; }

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
# Another run may have finished the build while we waited for the lock.
if [ -f "$tree/$stamp" ] && [ "$(cat "$tree/$stamp")" = "$STAMP_CONTENT" ]; then
    echo "$tree"
    exit 0
fi

mirror=${WXTOKEN_TEST_MIRROR:-$(find_mirror | head -n1)}
# This machine's sources name only its own release: the mirror of bookworm carries bullseye too.
[ -n "$mirror" ] || [ "$SUITE" = bookworm ] || mirror=$(SUITE=bookworm find_mirror | head -n1)
if [ -z "$mirror" ]; then
    log "no Debian $SUITE mirror found in /etc/apt/sources.list*; set WXTOKEN_TEST_MIRROR"
    exit 3
fi

# Leftovers of killed builds.
rm -rf "$cache_root/$NAME".tmp.* "$cache_root/$NAME".old.*

tmp=$(mktemp -d "$cache_root/$NAME.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' TERM INT HUP
log "debootstrap $SUITE (minbase, +$INCLUDE) from $mirror into $tmp"
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
    log "debootstrap failed; last lines of its log:"
    tail -n 30 "$tmp/debootstrap.log" >&2
    [ -f "$tmp/root/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/root/debootstrap/debootstrap.log" >&2
    exit 1
fi
# Slim the copy each test run makes.
rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*_Packages
echo "$STAMP_CONTENT" >"$tmp/root/$stamp"
if [ -e "$tree" ]; then
    mv "$tree" "$cache_root/$NAME.old.$$"
fi
mv "$tmp/root" "$tree"
rm -rf "$cache_root/$NAME.old.$$"
log "built in $(( $(date +%s) - start )) s"
echo "$tree"
