#!/bin/bash
# Runs inside the booted test container (see `e2e.sh deb`): installs /root/wxtoken.deb with dpkg
# while systemd runs, as an admin would, then checks what the package promises. Writes "ok NAME" /
# "FAIL NAME: details" lines and "DONE" to /results/report; extra output to /results/debug.log.
set -u
R=/results/report
D=/results/debug.log
: >"$R"
: >"$D"
exec 2>>"$D"

ok()   { echo "ok $1" >>"$R"; }
fail() { echo "FAIL $1: $2" >>"$R"; }
debug() { { echo "---- $*"; "$@"; } >>"$D" 2>&1; }
expect() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected '$2', got '$3'"; fi; }
prop() { systemctl show -P "$2" "$1"; }

# docs_found WHERE MANPAGE [FISH_ENV...]: man-db, bash-completion, zsh and fish, each in a clean
# login-like environment, find the installed man page and completions by themselves.
docs_found() {
    local where=$1 page=$2 e out
    shift 2
    e="env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    # Debian's /usr/local/man is a link to /usr/local/share/man.
    expect "$where: man -w wxtoken-refresh" "$page" "$(readlink -f "$($e man -w wxtoken-refresh 2>&1)")"
    out=$($e man wxtoken-refresh 2>&1)
    grep -q -- '--max-time' <<<"$out" && ok "$where: man wxtoken-refresh shows --max-time" \
        || fail "$where: man wxtoken-refresh" "$(head -c 300 <<<"$out")"
    # What bash does on TAB: bash-completion loads the file by the command's name, and its function
    # answers "wxtoken ref".
    out=$($e bash -c 'source /usr/share/bash-completion/bash_completion; __load_completion wxtoken || exit 1
        COMP_WORDS=(wxtoken ref); COMP_CWORD=1; COMP_LINE="wxtoken ref"; COMP_POINT=${#COMP_LINE}
        f=$(complete -p wxtoken | sed -n "s/.* -F \([^ ]*\).*/\1/p"); "$f" wxtoken ref wxtoken; echo "${COMPREPLY[*]}"' 2>&1)
    expect "$where: bash-completion completes 'wxtoken ref'" refresh "$out"
    expect "$where: zsh's compinit finds _wxtoken in its fpath" _wxtoken \
        "$($e zsh -c 'autoload -Uz compinit && compinit -u -D && print -r -- ${_comps[wxtoken]}' 2>&1)"
    out=$($e "$@" fish -c 'complete -C "wxtoken ref"' 2>&1)
    expect "$where: fish${*:+ ($*)} completes 'wxtoken ref'" refresh "${out%%$'\t'*}"
}

# units_docs UNIT...: every Documentation= of the loaded units names an installed man page or file.
units_docs() {
    local u doc name bad= all=
    for u in "$@"; do
        for doc in $(prop "$u" Documentation); do
            doc=${doc//\"/}  # systemctl show quotes each entry
            all="$all $doc"
            case $doc in
                man:*) name=${doc#man:}; name=${name%)}
                    man -w "${name#*(}" "${name%(*}" >/dev/null 2>&1 || bad="$bad $u:$doc" ;;
                file:/*) [ -f "${doc#file:}" ] || bad="$bad $u:$doc" ;;
                *) bad="$bad $u:$doc" ;;
            esac
        done
    done
    if [ -z "$all" ]; then fail "Documentation= of $*" "none"
    elif [ -z "$bad" ]; then ok "Documentation= of $* installed:$(tr ' ' '\n' <<<"$all" | sort -u | tr '\n' ' ')"
    else fail "Documentation= of $* installed" "missing:$bad"; fi
}

# --- install -------------------------------------------------------------------------------------
if dpkg -i /root/wxtoken.deb >>"$D" 2>&1; then ok "dpkg -i wxtoken.deb"; else fail "dpkg -i wxtoken.deb" "see debug.log"; fi
getent passwd wxtoken >/dev/null && getent group wxtoken >/dev/null \
    && ok "postinst created user and group wxtoken" || fail "user wxtoken" "missing after install"
expect "wxtoken.timer enabled by the package" enabled "$(systemctl is-enabled wxtoken.timer 2>&1)"
expect "wxtoken.timer started by the package" active "$(systemctl is-active wxtoken.timer 2>&1)"
expect "wxtoken.path enabled by the package" enabled "$(systemctl is-enabled wxtoken.path 2>&1)"
expect "wxtoken.path started by the package, waiting" "active waiting" "$(prop wxtoken.path ActiveState) $(prop wxtoken.path SubState)"
expect "/usr/lib/systemd/system/wxtoken@.path installed" yes "$([ -f /usr/lib/systemd/system/wxtoken@.path ] && echo yes)"
systemctl list-timers --all --no-pager --no-legend | grep -q ' wxtoken.timer ' \
    && ok "wxtoken.timer listed by systemctl list-timers" || fail "wxtoken.timer listed" "not listed"
expect "the one-shot wxtoken.service was not started by the package" "inactive 0" \
    "$(prop wxtoken.service ActiveState) $(prop wxtoken.service ExecMainStartTimestampMonotonic)"
conffiles=$(dpkg-query -W -f='${Conffiles}' wxtoken)
grep -q '/etc/wxtoken/wxtoken.conf' <<<"$conffiles" && ok "/etc/wxtoken/wxtoken.conf is a conffile" \
    || fail "/etc/wxtoken/wxtoken.conf is a conffile" "conffiles: $conffiles"
expect "/usr/lib/sysusers.d/wxtoken.conf installed" yes "$([ -f /usr/lib/sysusers.d/wxtoken.conf ] && echo yes)"
docs_found package /usr/share/man/man1/wxtoken-refresh.1.gz
units_docs wxtoken.service wxtoken.timer wxtoken.path wxtoken@shop.service wxtoken@shop.timer wxtoken@shop.path
# Not configured yet: a start is skipped by ConditionPathExists=/etc/wxtoken/secret, not failed.
systemctl start wxtoken.service
debug systemctl status --no-pager wxtoken.service
expect "unconfigured wxtoken.service is skipped, not failed" "inactive no" \
    "$(prop wxtoken.service ActiveState) $(prop wxtoken.service ConditionResult)"

# --- configure and run: the packaged units run /usr/bin/wxtoken ----------------------------------
install -m0644 /root/wxtoken-conf/wxtoken.conf /etc/wxtoken/wxtoken.conf
install -m0600 /root/wxtoken-conf/secret /etc/wxtoken/secret
systemctl start wxtoken.service; rc=$?
debug systemctl status --no-pager wxtoken.service
expect "configured wxtoken.service succeeds" "0 success 0" "$rc $(prop wxtoken.service Result) $(prop wxtoken.service ExecMainStatus)"
expect "token file owner and mode" "wxtoken:wxtoken 640" "$(stat -c '%U:%G %a' /var/lib/wxtoken/access_token.json 2>&1)"

# An instance, enabled by the admin: purge must not leave its links behind.
systemctl enable wxtoken@shop.timer wxtoken@shop.path >>"$D" 2>&1

# --- remove keeps the settings, purge removes them -----------------------------------------------
if dpkg -r wxtoken >>"$D" 2>&1; then ok "dpkg -r wxtoken"; else fail "dpkg -r wxtoken" "see debug.log"; fi
expect "after remove: binary gone, settings kept" "no yes" \
    "$([ -e /usr/bin/wxtoken ] && echo yes || echo no) $([ -e /etc/wxtoken/wxtoken.conf ] && echo yes || echo no)"
docs=$(ls /usr/share/man/man1/wxtoken* /usr/share/bash-completion/completions/wxtoken /usr/share/zsh/vendor-completions/_wxtoken \
    /usr/share/fish/vendor_completions.d/wxtoken.fish 2>/dev/null | tr '\n' ' ')
expect "after remove: man pages and completions gone" "" "$docs"
expect "after remove: wxtoken.timer stopped" inactive "$(systemctl is-active wxtoken.timer 2>&1)"
expect "after remove: wxtoken.path stopped" inactive "$(systemctl is-active wxtoken.path 2>&1)"
if dpkg --purge wxtoken >>"$D" 2>&1; then ok "dpkg --purge wxtoken"; else fail "dpkg --purge wxtoken" "see debug.log"; fi
expect "after purge: /etc/wxtoken and /var/lib/wxtoken gone" "no no" \
    "$([ -e /etc/wxtoken ] && echo yes || echo no) $([ -e /var/lib/wxtoken ] && echo yes || echo no)"
links=$(find /etc/systemd/system -name 'wxtoken*' ! -name 'wxtoken-e2e-check*' 2>/dev/null | tr '\n' ' ')
expect "after purge: no wxtoken unit links left in /etc/systemd/system" "" "$links"
debug ls -la /etc/systemd/system/timers.target.wants /etc/systemd/system/paths.target.wants

echo DONE >>"$R"
