#!/usr/bin/env bash
# Static checks of the systemd units as `make install` installs them:
#  - `systemd-analyze --man=no verify` on every unit, templates instantiated (wxtoken@shop.*);
#    any output counts as a failure (verify exits 0 on mere parse warnings);
#  - `systemd-analyze security --offline=yes` on every service: exposure must be <= 2.0;
#  - the same two with the README's drop-in for WXTOKEN_GROUP (group-drop-in) in place.
# Both for PREFIX=/usr (the Debian package's paths, as in systemd/) and the default /usr/local.
#
# Environment: WXTOKEN_BIN, the binary to install (default $CARGO_TARGET_DIR/debug/wxtoken; any
# executable does: verify only checks that ExecStart= names an executable file); WXTOKEN_GEN_DOCS,
# the gen-docs example that makes the man pages and completions `make install` wants (default
# $CARGO_TARGET_DIR/debug/examples/gen-docs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
bin=${WXTOKEN_BIN:-$target/debug/wxtoken}
gen_docs=${WXTOKEN_GEN_DOCS:-$target/debug/examples/gen-docs}
MAX_EXPOSURE=2.0

command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed (package systemd)" >&2; exit 3; }
[ -x "$bin" ] || { echo "binary $bin not found (cargo build)" >&2; exit 3; }
[ -x "$gen_docs" ] || { echo "$gen_docs not found (cargo build --example gen-docs)" >&2; exit 3; }

# verify --root= needs systemd's own units (sysinit.target, ...) inside the root.
sysunits=
for d in /usr/lib/systemd/system /lib/systemd/system; do
    [ -e "$d/sysinit.target" ] && { sysunits=$d; break; }
done
[ -n "$sysunits" ] || { echo "systemd's unit directory not found" >&2; exit 3; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
"$gen_docs" "$work/assets" >/dev/null

units="wxtoken.service wxtoken.timer wxtoken.path wxtoken@shop.service wxtoken@shop.timer wxtoken@shop.path"

# check LABEL ROOT: verify every unit, and score every service's exposure.
check() {
    local label=$1 root=$2 out rc unit score
    out=$(systemd-analyze --man=no verify --root="$root" $units 2>&1) && rc=0 || rc=$?
    if [ "$rc" != 0 ] || [ -n "$out" ]; then
        echo "FAIL verify ($label, exit $rc):"; echo "$out" | sed 's/^/    /'
        status=1
    else
        echo "ok   verify $label: $units"
    fi

    for unit in wxtoken.service wxtoken@shop.service; do
        out=$(systemd-analyze security --offline=yes --root="$root" "$unit" 2>&1) || true
        score=$(echo "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
        if [ -z "$score" ]; then
            echo "FAIL security $unit ($label): no score in:"; echo "$out" | sed 's/^/    /'
            status=1
        elif awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
            echo "FAIL security $label $unit: exposure $score > $MAX_EXPOSURE"
            echo "$out" | grep '✗' | sed 's/^/    /'
            status=1
        else
            echo "ok   security $label $unit: exposure $score (max $MAX_EXPOSURE)"
        fi
    done
}
echo "$(systemd-analyze --version | head -n1)"

for prefix in /usr /usr/local; do
    root=$work/root$(echo "$prefix" | tr / _)
    make -s -C "$repo" install DESTDIR="$root" PREFIX="$prefix" BIN="$bin" ASSETS="$work/assets" >/dev/null
    # systemd's own units, beside ours when PREFIX=/usr (never overwriting them).
    mkdir -p "$root/usr/lib/systemd/system"
    cp -an "$sysunits/." "$root/usr/lib/systemd/system/"

    check "PREFIX=$prefix" "$root"

    # The README's drop-in for another group, as an admin installs it with `systemctl edit`.
    dropped=$work/dropin$(echo "$prefix" | tr / _)
    cp -a "$root" "$dropped"
    for u in wxtoken.service wxtoken@.service; do
        mkdir -p "$dropped/etc/systemd/system/$u.d"
        "$here/readme-block.sh" group-drop-in >"$dropped/etc/systemd/system/$u.d/group.conf"
    done
    check "PREFIX=$prefix + README group-drop-in" "$dropped"
done
if [ "$status" = 0 ]; then
    echo "remaining exposure items of wxtoken.service (systemd-analyze security --offline=yes):"
    systemd-analyze security --offline=yes --root="$work/root_usr" wxtoken.service 2>&1 | grep '✗' | sed 's/  */ /g; s/^/    /'
fi
exit "$status"
