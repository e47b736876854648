#!/usr/bin/env bash
# Checks `make install` / `make uninstall`: PREFIX, DESTDIR, CARGO_TARGET_DIR (the release binary is
# taken from there), ASSETS (the generated man pages and completions), the ExecStart= and
# Documentation= rewrites, modes, an admin's config never overwritten, and uninstall leaving only
# that config. Uses a stand-in binary: it needs no cargo build, no root.
#
# Environment: WXTOKEN_GEN_DOCS, the gen-docs example (default
# $CARGO_TARGET_DIR/debug/examples/gen-docs), run here to produce the real man pages and completions.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
gen_docs=${WXTOKEN_GEN_DOCS:-$target/debug/examples/gen-docs}
command -v make >/dev/null || { echo "make not installed" >&2; exit 3; }
[ -x "$gen_docs" ] || { echo "$gen_docs not found (cargo build --example gen-docs)" >&2; exit 3; }

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
# make must not run cargo, nor pick up the repo's own target/ dir (nor its target/assets).
export CARGO=false
assets=$work/assets
"$gen_docs" "$assets" >/dev/null
export ASSETS=$assets

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
644 ./usr/local/share/doc/wxtoken/wxtoken.cron
755 ./usr/local/lib/wxtoken/hooks/memcached
755 ./usr/local/lib/wxtoken/hooks/mysql-wx_token
644 ./usr/local/share/wxtoken/php/wxtoken.php
644 ./usr/local/share/wxtoken/python/wxtoken_reader.py
755 ./usr/local/bin/wxtoken
644 ./usr/local/share/doc/wxtoken/README.md
644 ./usr/local/share/bash-completion/completions/wxtoken
644 ./usr/local/share/zsh/site-functions/_wxtoken
644 ./usr/local/share/fish/vendor_completions.d/wxtoken.fish"
pages=$(cd "$assets/man" && ls)
for m in $pages; do expected_local="$expected_local
644 ./usr/local/share/man/man1/$m"; done
expect "PREFIX=/usr/local: installed files and modes" "$(echo "$expected_local" | sort)" "$(listing "$d")"
case " $(echo $pages) " in *" wxtoken.1 "*) case " $(echo $pages) " in *" wxtoken-refresh.1 "*) ok "man pages: $(echo $pages)" ;;
    *) fail "no wxtoken-refresh.1 among the man pages: $(echo $pages)" ;; esac ;;
    *) fail "no wxtoken.1 among the man pages: $(echo $pages)" ;; esac
for f in man/wxtoken-refresh.1:share/man/man1/wxtoken-refresh.1 completions/wxtoken.bash:share/bash-completion/completions/wxtoken \
    completions/_wxtoken:share/zsh/site-functions/_wxtoken completions/wxtoken.fish:share/fish/vendor_completions.d/wxtoken.fish; do
    cmp -s "$assets/${f%%:*}" "$d/usr/local/${f#*:}" || fail "/usr/local/${f#*:} is not \$ASSETS/${f%%:*}"
done
# Every unit names documentation that is installed: the README where make put it, the man pages.
docs_ok=1
for u in "$d"/usr/local/lib/systemd/system/*; do
    for doc in $(sed -n 's/^Documentation=//p' "$u"); do
        case $doc in
            file:/*) [ -f "$d${doc#file:}" ] || { docs_ok=0; fail "${u##*/}: $doc is not installed"; } ;;
            man:*) page=${doc#man:}; page="${page%(*}.${page#*(}"; page=${page%)}
                [ -f "$d/usr/local/share/man/man1/$page" ] || { docs_ok=0; fail "${u##*/}: $doc: no man1/$page"; } ;;
            *) docs_ok=0; fail "${u##*/}: unexpected Documentation=$doc" ;;
        esac
    done
done
[ "$docs_ok" = 1 ] && ok "every unit's Documentation= names an installed file: $(sed -n 's/^Documentation=//p' "$d/usr/local/lib/systemd/system/wxtoken.path")"
cmp -s "$d/usr/local/bin/wxtoken" "$work/target/release/wxtoken" && ok "binary taken from \$CARGO_TARGET_DIR/release" \
    || fail "binary not taken from \$CARGO_TARGET_DIR/release"
expect "PREFIX=/usr/local: ExecStart= of both services" \
    "ExecStart=/usr/local/bin/wxtoken refresh
ExecStart=/usr/local/bin/wxtoken refresh" \
    "$(grep -h '^ExecStart=' "$d/usr/local/lib/systemd/system/wxtoken.service" "$d/usr/local/lib/systemd/system/wxtoken@.service")"
if grep -rq '/usr/bin/wxtoken' "$d/usr/local/lib/systemd/system"; then fail "units still name /usr/bin/wxtoken"; else ok "no unit names /usr/bin/wxtoken"; fi

# The example settings and the cron file name where this PREFIX put the hooks and the binary.
expect "PREFIX=/usr/local: wxtoken.conf names the installed hooks" \
    "#WXTOKEN_ON_CHANGE=/usr/local/lib/wxtoken/hooks/memcached" \
    "$(grep '^#WXTOKEN_ON_CHANGE=' "$d/etc/wxtoken/wxtoken.conf")"
expect "PREFIX=/usr/local: the cron example names the installed binary" \
    "* * * * * wxtoken /usr/local/bin/wxtoken refresh --config /etc/wxtoken/wxtoken.conf --quiet" \
    "$(grep '^\* ' "$d/usr/local/share/doc/wxtoken/wxtoken.cron")"

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
[ -f "$d/usr/share/doc/wxtoken/README.md" ] && [ -f "$d/usr/share/man/man1/wxtoken-refresh.1" ] \
    && ok "PREFIX=/usr: the units' Documentation= files are installed" || fail "PREFIX=/usr: README.md or wxtoken-refresh.1 missing"

# --- no binary: a clear error, nothing installed ----------------------------------------------------
d=$work/dest-nobin
if out=$(CARGO_TARGET_DIR=$work/none make -s -C "$repo" install DESTDIR="$d" 2>&1); then
    fail "install without a built binary should fail"
else
    case $out in *"not found"*) ok "install without a built binary fails: ${out%%$'\n'*}" ;; *) fail "unclear error: $out" ;; esac
fi
[ ! -e "$d" ] && ok "nothing installed without a binary" || fail "files installed without a binary"

# --- no generated man pages and completions: a clear error, nothing installed ----------------------
d=$work/dest-nodocs
if out=$(CARGO_TARGET_DIR=$work/target ASSETS=$work/none make -s -C "$repo" install DESTDIR="$d" 2>&1); then
    fail "install without the generated man pages and completions should fail"
else
    case $out in *"not found"*"make docs"*) ok "install without man pages and completions fails: ${out%%$'\n'*}" ;; *) fail "unclear error: $out" ;; esac
fi
[ ! -e "$d" ] && ok "nothing installed without them" || fail "files installed without man pages and completions"

exit "$status"
