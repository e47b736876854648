#!/usr/bin/env bash
# Checks `make install` / `make uninstall`: PREFIX, DESTDIR, CARGO_TARGET_DIR (the release binary is
# taken from there), the ExecStart= rewrite, modes, an admin's config never overwritten, and
# uninstall leaving only that config. Uses a stand-in binary: it needs no cargo build, no root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v make >/dev/null || { echo "make not installed" >&2; exit 3; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
ok()   { echo "ok   $*"; }
fail() { echo "FAIL $*"; status=1; }
expect() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi; }

# A release build in a non-default CARGO_TARGET_DIR.
mkdir -p "$work/target/release"
printf '#!/bin/sh\necho stand-in\n' >"$work/target/release/wxtoken"
chmod 0755 "$work/target/release/wxtoken"
# make must not run cargo, nor pick up the repo's own target/ dir.
export CARGO=false

listing() { (cd "$1" && find . \( -type f -o -type l \) -printf '%m %p\n' | sort); }

# --- default PREFIX=/usr/local ---------------------------------------------------------------------
d=$work/dest-local
CARGO_TARGET_DIR=$work/target make -s -C "$repo" install DESTDIR="$d" >/dev/null
expected_local="644 ./etc/wxtoken/wxtoken.conf
644 ./usr/local/lib/systemd/system/wxtoken.path
644 ./usr/local/lib/systemd/system/wxtoken.service
644 ./usr/local/lib/systemd/system/wxtoken.timer
644 ./usr/local/lib/systemd/system/wxtoken@.path
644 ./usr/local/lib/systemd/system/wxtoken@.service
644 ./usr/local/lib/systemd/system/wxtoken@.timer
644 ./usr/local/lib/sysusers.d/wxtoken.conf
644 ./usr/local/share/doc/wxtoken/wxtoken.conf.example
755 ./usr/local/bin/wxtoken"
man=$(cd "$repo" && ls man/*.1 2>/dev/null || true)
for m in $man; do expected_local="$expected_local
644 ./usr/local/share/man/man1/${m##*/}"; done
[ -f "$repo/README.md" ] && expected_local="$expected_local
644 ./usr/local/share/doc/wxtoken/README.md"
expect "PREFIX=/usr/local: installed files and modes" "$(echo "$expected_local" | sort)" "$(listing "$d")"
cmp -s "$d/usr/local/bin/wxtoken" "$work/target/release/wxtoken" && ok "binary taken from \$CARGO_TARGET_DIR/release" \
    || fail "binary not taken from \$CARGO_TARGET_DIR/release"
expect "PREFIX=/usr/local: ExecStart= of both services" \
    "ExecStart=/usr/local/bin/wxtoken refresh
ExecStart=/usr/local/bin/wxtoken refresh" \
    "$(grep -h '^ExecStart=' "$d/usr/local/lib/systemd/system/wxtoken.service" "$d/usr/local/lib/systemd/system/wxtoken@.service")"
if grep -rq '/usr/bin/wxtoken' "$d/usr/local/lib/systemd/system"; then fail "units still name /usr/bin/wxtoken"; else ok "no unit names /usr/bin/wxtoken"; fi

# An admin's settings survive a reinstall.
echo "WXTOKEN_APPID=wxadmin" >"$d/etc/wxtoken/wxtoken.conf"
CARGO_TARGET_DIR=$work/target make -s -C "$repo" install DESTDIR="$d" >/dev/null
expect "reinstall keeps /etc/wxtoken/wxtoken.conf" "WXTOKEN_APPID=wxadmin" "$(cat "$d/etc/wxtoken/wxtoken.conf")"

CARGO_TARGET_DIR=$work/target make -s -C "$repo" uninstall DESTDIR="$d" >/dev/null
expect "uninstall leaves only the admin's config" "644 ./etc/wxtoken/wxtoken.conf" "$(listing "$d")"

# --- PREFIX=/usr (the Debian package's layout): the units are installed as they are in systemd/ --
d=$work/dest-usr
make -s -C "$repo" install DESTDIR="$d" PREFIX=/usr BIN="$work/target/release/wxtoken" >/dev/null
[ -x "$d/usr/bin/wxtoken" ] && ok "PREFIX=/usr: /usr/bin/wxtoken" || fail "PREFIX=/usr: /usr/bin/wxtoken missing"
same=1
for u in wxtoken.service wxtoken.timer wxtoken.path wxtoken@.service wxtoken@.timer wxtoken@.path; do
    cmp -s "$repo/systemd/$u" "$d/usr/lib/systemd/system/$u" || { same=0; fail "PREFIX=/usr: $u differs from systemd/$u"; }
done
[ "$same" = 1 ] && ok "PREFIX=/usr: units installed unchanged"
[ -f "$d/usr/lib/sysusers.d/wxtoken.conf" ] && ok "PREFIX=/usr: /usr/lib/sysusers.d/wxtoken.conf" || fail "PREFIX=/usr: sysusers entry missing"

# --- no binary: a clear error, nothing installed ----------------------------------------------------
d=$work/dest-nobin
if out=$(CARGO_TARGET_DIR=$work/none make -s -C "$repo" install DESTDIR="$d" 2>&1); then
    fail "install without a built binary should fail"
else
    case $out in *"not found"*) ok "install without a built binary fails: ${out%%$'\n'*}" ;; *) fail "unclear error: $out" ;; esac
fi
[ ! -e "$d" ] && ok "nothing installed without a binary" || fail "files installed without a binary"

exit "$status"
