#!/bin/bash
# Runs inside the booted test container (see e2e.sh) as a oneshot unit. Writes one line per check
# to /results/report: "ok NAME" or "FAIL NAME: details", then "DONE". Never exits early: every
# check is attempted so one run shows everything that is wrong. Extra output goes to
# /results/debug.log.
set -u
R=/results/report
D=/results/debug.log
: >"$R"
: >"$D"
exec 2>>"$D"

ok()   { echo "ok $1" >>"$R"; }
fail() { echo "FAIL $1: $2" >>"$R"; }
debug() { { echo "---- $*"; "$@"; } >>"$D" 2>&1; }
# expect NAME EXPECTED ACTUAL
expect() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected '$2', got '$3'"; fi; }
prop() { systemctl show -P "$2" "$1"; }
# Reads FILE as USER (with USER's groups from /etc/group), like php-fpm would.
read_as() { setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups cat "$2" >/dev/null 2>&1; }

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

wait_journal() { # UNIT REGEX -> prints the first matching line; journald may lag a little
    local i line
    for i in $(seq 50); do
        line=$(journalctl -q -u "$1" --no-pager -o cat | grep -E -m1 "$2") && { echo "$line"; return 0; }
        sleep 0.1
    done
    return 1
}

# --- the system user from the sysusers.d entry (applied by systemd-sysusers at boot) -----------
if getent passwd wxtoken >/dev/null && getent group wxtoken >/dev/null; then
    ok "user and group wxtoken created by systemd-sysusers at boot"
else
    fail "user wxtoken" "missing: $(getent passwd wxtoken) / $(getent group wxtoken)"
fi
# --- man pages and completions (make install, PREFIX=/usr/local) -----------------------------------
# fish reads /usr/local/share only through XDG_DATA_DIRS, as desktop sessions set it (README).
docs_found "make install" /usr/local/share/man/man1/wxtoken-refresh.1 XDG_DATA_DIRS=/usr/local/share:/usr/share
units_docs wxtoken.service wxtoken.timer wxtoken.path wxtoken@shop.service wxtoken@shop.timer wxtoken@shop.path

# php-fpm's user joins the readers' group, as the README tells admins to.
usermod -aG wxtoken www-data

# --- timers and path units --------------------------------------------------------------------
# The path units go first, before any run has created the request directories they watch.
systemctl enable --now wxtoken.path wxtoken@shop.path >>"$D" 2>&1
for p in wxtoken.path wxtoken@shop.path; do
    expect "$p enabled" enabled "$(systemctl is-enabled "$p")"
    expect "$p waits although its directory does not exist yet" "active waiting" "$(prop "$p" ActiveState) $(prop "$p" SubState)"
done
expect "wxtoken.path starts wxtoken.service" wxtoken.service "$(prop wxtoken.path Triggers)"
expect "wxtoken@shop.path starts wxtoken@shop.service" wxtoken@shop.service "$(prop wxtoken@shop.path Triggers)"
for u in wxtoken.service wxtoken@shop.service; do
    # A run before the clock is set would write wrong expiries.
    grep -qw time-sync.target <<<"$(prop "$u" After)" && ok "$u is ordered after time-sync.target" \
        || fail "$u After=time-sync.target" "After=$(prop "$u" After)"
done
# The filter lets fchown through for WXTOKEN_GROUP, and nothing else of @chown.
filter=" $(prop wxtoken.service SystemCallFilter) "
case $filter in
    *" fchown "*) case $filter in
        *" chown "*|*" lchown "*|*" fchownat "*) fail "only fchown of @chown allowed" "$(tr ' ' '\n' <<<"$filter" | grep chown | tr '\n' ' ')" ;;
        *) ok "the system call filter allows fchown, not chown, lchown, fchownat" ;; esac ;;
    *) fail "the system call filter allows fchown" "not in: $filter" ;;
esac

systemctl enable --now wxtoken.timer wxtoken@shop.timer >>"$D" 2>&1
timers=$(systemctl list-timers --all --no-pager --no-legend)
debug systemctl list-timers --all --no-pager
for t in wxtoken.timer wxtoken@shop.timer; do
    if grep -q " $t " <<<"$timers "; then ok "$t listed by systemctl list-timers"; else fail "$t listed" "not in: $timers"; fi
    expect "$t enabled" enabled "$(systemctl is-enabled "$t")"
    expect "$t active" active "$(systemctl is-active "$t")"
    # Every minute plus a fixed random delay under 30 s: the next tick is at most 90 s away.
    next=$(date -d "$(prop "$t" NextElapseUSecRealtime)" +%s 2>/dev/null || echo 0)
    left=$((next - $(date +%s)))
    if [ "$left" -ge 0 ] && [ "$left" -le 90 ]; then ok "$t next tick in $left s (<= 90)"; else
        fail "$t next tick within 90 s" "NextElapseUSecRealtime='$(prop "$t" NextElapseUSecRealtime)' ($left s)"; fi
done

# --- instance first: /var/lib/wxtoken does not exist yet, systemd creates the parent ----------
systemctl start wxtoken@shop.service; rc=$?
debug systemctl status --no-pager wxtoken@shop.service
expect "wxtoken@shop.service start succeeds" 0 "$rc"
expect "wxtoken@shop.service result" "success 0" "$(prop wxtoken@shop.service Result) $(prop wxtoken@shop.service ExecMainStatus)"
f=/var/lib/wxtoken/shop/access_token.json
debug ls -la /var/lib/wxtoken /var/lib/wxtoken/shop
expect "$f owner and mode" "wxtoken:wxtoken 640" "$(stat -c '%U:%G %a' "$f" 2>&1)"
expect "/var/lib/wxtoken/shop owner and mode" "wxtoken:wxtoken 750" "$(stat -c '%U:%G %a' /var/lib/wxtoken/shop 2>&1)"
grep -q '"access_token"' "$f" 2>/dev/null && ok "$f holds an access_token" || fail "$f content" "$(head -c 300 "$f" 2>&1)"
read_as www-data "$f" && ok "www-data (group wxtoken) reads $f" || fail "www-data reads $f" "denied"
read_as nobody "$f" && fail "nobody cannot read $f" "nobody read it" || ok "nobody cannot read $f"

# --- the single-account service ------------------------------------------------------------------
systemctl start wxtoken.service; rc=$?
debug systemctl status --no-pager wxtoken.service
expect "wxtoken.service start succeeds" 0 "$rc"
expect "wxtoken.service result" "success 0" "$(prop wxtoken.service Result) $(prop wxtoken.service ExecMainStatus)"
f=/var/lib/wxtoken/access_token.json
debug ls -la /var/lib/wxtoken
expect "$f owner and mode" "wxtoken:wxtoken 640" "$(stat -c '%U:%G %a' "$f" 2>&1)"
expect "/var/lib/wxtoken owner and mode" "wxtoken:wxtoken 750" "$(stat -c '%U:%G %a' /var/lib/wxtoken 2>&1)"
grep -q '"access_token"' "$f" 2>/dev/null && ok "$f holds an access_token" || fail "$f content" "$(head -c 300 "$f" 2>&1)"
read_as www-data "$f" && ok "www-data (group wxtoken) reads $f" || fail "www-data reads $f" "denied"
read_as nobody "$f" && fail "nobody cannot read $f" "nobody read it" || ok "nobody cannot read $f"
# The instance's file stays readable now that /var/lib/wxtoken is wxtoken:wxtoken 0750.
read_as www-data /var/lib/wxtoken/shop/access_token.json && ok "www-data still reads the instance's file" \
    || fail "www-data still reads the instance's file" "denied"
# The process ran as wxtoken: journald records the uid of the process behind each line it logged
# (systemd's own lines about the unit carry uid 0 and another identifier).
uids=$(journalctl -u wxtoken.service SYSLOG_IDENTIFIER=wxtoken -o export --no-pager | sed -n 's/^_UID=//p' | sort -u | tr '\n' ' ')
expect "wxtoken.service ran as user wxtoken (journal _UID of its log lines)" "$(id -u wxtoken) " "$uids"
# A second run finds the file fresh: no new token, still success.
systemctl start wxtoken.service
expect "second wxtoken.service run (file fresh) succeeds" "success 0" "$(prop wxtoken.service Result) $(prop wxtoken.service ExecMainStatus)"

# --- wxtoken check run as the README says: the service's user, credential and settings ----------
# as_service [systemd-run -p ...] -- ARGS: the README's systemd-run line; output in $out, status in $rc.
as_service() {
    local props=()
    while [ "$1" != -- ]; do props+=("$1"); shift; done
    shift
    out=$(systemd-run --quiet --pipe --wait -p User=wxtoken "${props[@]}" /usr/local/bin/wxtoken "$@" 2>>"$D"); rc=$?
    echo "---- wxtoken $* (rc $rc)" >>"$D"; echo "$out" >>"$D"
}
# has NAME TEXT: a check line of $out contains TEXT
has() { if grep -qF -- "$2" <<<"$out"; then ok "$1"; else fail "$1" "no '$2' in: $(tr '\n' '|' <<<"$out")"; fi; }
as_service -p LoadCredential=wxtoken-secret:/etc/wxtoken/secret -p EnvironmentFile=/etc/wxtoken/wxtoken.conf -- check --online
expect "check --online as the service exits 0" 0 "$rc"
has "check ran as user wxtoken" "INFO user: checking as user wxtoken"
has "check: secret from the credential" 'from $CREDENTIALS_DIRECTORY'
has "check: unit's StateDirectory covers the output" "PASS unit wxtoken.service: /var/lib/wxtoken: within its StateDirectory /var/lib/wxtoken"
has "check: the service's user can replace the token file" "PASS file: /var/lib/wxtoken/access_token.json: a regular file"
has "check --online fetched" "PASS online fetch:"
has "check --online probed" "PASS online probe:"
as_service -p LoadCredential=wxtoken-secret:/etc/wxtoken/shop.secret -p Environment=WXTOKEN_OUT=/var/lib/wxtoken/shop/access_token.json \
    -p EnvironmentFile=/etc/wxtoken/shop.conf -- check --online --unit wxtoken@shop
expect "check of the instance exits 0" 0 "$rc"
has "check: the instance's StateDirectory (%i)" "PASS unit wxtoken@shop.service: /var/lib/wxtoken/shop: within its StateDirectory /var/lib/wxtoken/shop"

# --- a wrong secret: exit 78, no restart, the unit stays failed, the journal names the errcode ---
systemctl start wxtoken@bad.service; rc=$?
debug systemctl status --no-pager wxtoken@bad.service
[ "$rc" != 0 ] && ok "wxtoken@bad.service start fails" || fail "wxtoken@bad.service start fails" "systemctl start returned 0"
expect "wxtoken@bad.service failed with status 78, not restarting" "failed failed exit-code 78" \
    "$(prop wxtoken@bad.service ActiveState) $(prop wxtoken@bad.service SubState) $(prop wxtoken@bad.service Result) $(prop wxtoken@bad.service ExecMainStatus)"
if line=$(wait_journal wxtoken@bad.service 'errcode [0-9]+'); then ok "journal names the errcode: $line"; else
    fail "journal names the errcode" "no 'errcode N' line in: $(journalctl -u wxtoken@bad.service --no-pager -o cat | tail -n 5)"; fi
[ ! -e /var/lib/wxtoken/bad/access_token.json ] && ok "no token file for the wrong secret" || fail "no token file for the wrong secret" "file exists"

# --- a transient failure (API unreachable): exit 75 and a restart is scheduled -------------------
systemctl start --no-block wxtoken@down.service
state=
for _ in $(seq 300); do
    state="$(prop wxtoken@down.service SubState) $(prop wxtoken@down.service ExecMainStatus)"
    case $state in auto-restart*|failed*|dead*) [ "${state##* }" != 0 ] && break ;; esac
    sleep 0.1
done
debug systemctl status --no-pager wxtoken@down.service
expect "wxtoken@down.service (unreachable API) exits 75 and waits to restart" "auto-restart 75" "$state"
systemctl stop wxtoken@down.service

# --- an output outside the state directory: check says so and gives the drop-in, which works ----
install -d -o wxtoken -g wxtoken -m 0750 /srv/wx
mkdir -p /etc/systemd/system/wxtoken.service.d
printf '[Service]\nEnvironment=WXTOKEN_OUT=/srv/wx/access_token.json\n' >/etc/systemd/system/wxtoken.service.d/out.conf
systemctl daemon-reload
systemctl start wxtoken.service
expect "wxtoken.service cannot write /srv/wx without ReadWritePaths (73)" "exit-code 73" "$(prop wxtoken.service Result) $(prop wxtoken.service ExecMainStatus)"
systemctl stop wxtoken.service; systemctl reset-failed wxtoken.service
as_service -p LoadCredential=wxtoken-secret:/etc/wxtoken/secret -p Environment=WXTOKEN_OUT=/srv/wx/access_token.json \
    -p EnvironmentFile=/etc/wxtoken/wxtoken.conf -- check
expect "check of an output outside the state directory exits 78" 78 "$rc"
has "check: ReadWritePaths missing" "FAIL unit wxtoken.service: /srv/wx is outside its StateDirectory (/var/lib/wxtoken)"
# The fix exactly as the FAIL line prints it.
fix=$(grep -o "mkdir -p /etc/systemd/system/wxtoken.service.d && printf .* && systemctl daemon-reload" <<<"$out")
if [ -n "$fix" ] && bash -c "$fix" >>"$D" 2>&1; then ok "the drop-in check printed applies"; else fail "the drop-in check printed" "'$fix'"; fi
debug cat /etc/systemd/system/wxtoken.service.d/output.conf
as_service -p LoadCredential=wxtoken-secret:/etc/wxtoken/secret -p Environment=WXTOKEN_OUT=/srv/wx/access_token.json \
    -p EnvironmentFile=/etc/wxtoken/wxtoken.conf -- check
expect "check with the drop-in exits 0" 0 "$rc"
systemctl start wxtoken.service
expect "wxtoken.service with the drop-in writes /srv/wx" "success 0" "$(prop wxtoken.service Result) $(prop wxtoken.service ExecMainStatus)"
[ -f /srv/wx/access_token.json ] && ok "/srv/wx/access_token.json written" || fail "/srv/wx/access_token.json written" "missing"
rm -f /etc/systemd/system/wxtoken.service.d/out.conf /etc/systemd/system/wxtoken.service.d/output.conf
systemctl daemon-reload

# --- the files in another group: WXTOKEN_GROUP=www-data with the README's drop-in ---------------
# www-data leaves group wxtoken: from now on only group www-data can give it the files.
gpasswd -d www-data wxtoken >>"$D" 2>&1
for u in wxtoken.service wxtoken@.service; do
    install -Dm0644 /root/group-drop-in.conf "/etc/systemd/system/$u.d/group.conf"
done
systemctl daemon-reload
debug id www-data
# The main directory's requests/ stays from the runs above (its group must follow the setting);
# the instance's is made anew under the drop-in's system-call filter.
rm -rf /var/lib/wxtoken/shop/requests
for unit in wxtoken.service wxtoken@shop.service; do
    systemctl start "$unit"
    debug systemctl status --no-pager "$unit"
    expect "$unit with the group drop-in succeeds" "success 0" "$(prop "$unit" Result) $(prop "$unit" ExecMainStatus)"
done
debug ls -la /var/lib/wxtoken /var/lib/wxtoken/shop
for f in /var/lib/wxtoken/access_token.json /var/lib/wxtoken/shop/access_token.json; do
    expect "$f owner and mode with WXTOKEN_GROUP=www-data" "wxtoken:www-data 640" "$(stat -c '%U:%G %a' "$f" 2>&1)"
    out=$(runuser -u www-data -- cat "$f" 2>&1)
    grep -q '"access_token"' <<<"$out" && ok "runuser -u www-data (not in group wxtoken) reads $f" \
        || fail "runuser -u www-data reads $f" "$out"
    read_as nobody "$f" && fail "nobody cannot read $f" "nobody read it" || ok "nobody cannot read $f"
done
expect "/var/lib/wxtoken with the group drop-in: enter, not list" "wxtoken:wxtoken 751" "$(stat -c '%U:%G %a' /var/lib/wxtoken 2>&1)"
runuser -u www-data -- ls /var/lib/wxtoken >/dev/null 2>&1 && fail "www-data cannot list /var/lib/wxtoken" "it can" \
    || ok "www-data cannot list /var/lib/wxtoken"
for d in /var/lib/wxtoken/requests /var/lib/wxtoken/shop/requests; do
    expect "$d: the readers' group may add requests" "wxtoken:www-data 1730" "$(stat -c '%U:%G %a' "$d" 2>&1)"
done

# --- passive refresh: WeChat revokes the token, an app reports it, wxtoken.path brings a new one ---
# The timers stop: from here only the path units start the services.
systemctl stop wxtoken.timer wxtoken@shop.timer
ctl=$(cat /root/fake-control)
appid=$(cat /root/fake-appid)
# GET on the fake's control endpoint (the host's loopback; no curl in a minimal Debian).
ctl_get() {
    local hp=${ctl#http://} body
    exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" || return 1
    printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
    body=$(sed '1,/^\r$/d' <&3)
    exec 3<&-
    printf '%s' "$body"
}
token_of() { sed -n 's/^ *"access_token": *"\([^"]*\)".*/\1/p' "$1" 2>/dev/null; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
now_ms() { date +%s%3N; }
started() { prop "$1" ExecMainStartTimestampMonotonic; }
# wait_token FILE OLD: waits (30 s at most) until FILE holds a token other than OLD that the fake
# calls valid; prints the milliseconds waited.
wait_token() {
    local t0 t new
    t0=$(now_ms)
    for _ in $(seq 600); do
        new=$(token_of "$1")
        if [ -n "$new" ] && [ "$new" != "$2" ] && [ "$(ctl_get "/valid?token=$new")" = valid ]; then
            t=$(now_ms); echo $((t - t0)); return 0
        fi
        sleep 0.05
    done
    return 1
}
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

f=/var/lib/wxtoken/access_token.json
old=$(token_of "$f")
expect "the fake calls the file's token valid" valid "$(ctl_get "/valid?token=$old")"
expect "the fake revokes the current token (the file's)" "$old" "$(ctl_get "/revoke?appid=$appid")"
expect "the fake calls the revoked token invalid" invalid "$(ctl_get "/valid?token=$old")"
probes0=$(ctl_get "/calls?path=/cgi-bin/get_api_domain_ip")
forced0=$(ctl_get "/calls?force_refresh=1")
before=$(started wxtoken.service)
expect "wxtoken.path waits for a report" "active waiting" "$(prop wxtoken.path ActiveState) $(prop wxtoken.path SubState)"
# What wxtoken_report_stale() does, as php-fpm's user: create requests/<sha256 of the token>.
t0=$(now_ms)
runuser -u www-data -- sh -c ': >"$1"' sh "/var/lib/wxtoken/requests/$(sha "$old")" \
    && ok "www-data files a report in /var/lib/wxtoken/requests" || fail "www-data files a report" "denied"
if waited=$(wait_token "$f" "$old"); then
    ok "passive refresh: a new valid token in $f $(secs "$waited") s after the app's report (wxtoken.path; timers stopped)"
    echo "MEASURED passive refresh, report to new valid token: $(secs "$waited") s" >>"$R"
else
    fail "passive refresh: a new valid token after the report" "none within 30 s; the file holds $(token_of "$f" | cut -c1-12)…"
fi
debug journalctl -u wxtoken.path -u wxtoken.service --no-pager -o short-monotonic -n 30
[ "$(started wxtoken.service)" != "$before" ] && ok "wxtoken.service ran (started by wxtoken.path)" \
    || fail "wxtoken.service ran" "no new start"
for _ in $(seq 100); do [ "$(prop wxtoken.service ActiveState)" = inactive ] && break; sleep 0.1; done
expect "the run succeeded" "success 0" "$(prop wxtoken.service Result) $(prop wxtoken.service ExecMainStatus)"
expect "the run probed the token once" 1 $(( $(ctl_get "/calls?path=/cgi-bin/get_api_domain_ip") - probes0 ))
# Stable normal mode hands out the revoked token again: one force_refresh replaces it.
expect "the run spent one force_refresh" 1 $(( $(ctl_get "/calls?force_refresh=1") - forced0 ))
expect "the request was consumed" "" "$(ls -A /var/lib/wxtoken/requests)"
expect "wxtoken.path waits again" "active waiting" "$(prop wxtoken.path ActiveState) $(prop wxtoken.path SubState)"
expect "the new file still belongs to www-data's group" "wxtoken:www-data 640" "$(stat -c '%U:%G %a' "$f")"

# The same account's instance still holds the revoked token: a report through `wxtoken
# report-stale` (token on stdin) brings it the current one, as the fetch finds it in normal mode.
fs=/var/lib/wxtoken/shop/access_token.json
old_shop=$(token_of "$fs")
expect "the instance holds the revoked token" invalid "$(ctl_get "/valid?token=$old_shop")"
t0=$(now_ms)
printf '%s' "$old_shop" | runuser -u www-data -- wxtoken report-stale --out "$fs" - >>"$D" 2>&1 \
    && ok "www-data: wxtoken report-stale --out $fs - exits 0" || fail "wxtoken report-stale as www-data" "exit $?"
if waited=$(wait_token "$fs" "$old_shop"); then
    ok "passive refresh of wxtoken@shop: a new valid token $(secs "$waited") s after wxtoken report-stale"
else
    fail "passive refresh of wxtoken@shop" "none within 30 s"
fi
# The path unit is "running" while the service it started is: wait for that run to end first.
for _ in $(seq 100); do [ "$(prop wxtoken@shop.service ActiveState)" = inactive ] && break; sleep 0.1; done
expect "wxtoken@shop.path waits again" "active waiting" "$(prop wxtoken@shop.path ActiveState) $(prop wxtoken@shop.path SubState)"

# Reports that name no current token (bogus ones, the old token again) cost no upstream call, are
# all consumed, and do not make the path unit loop.
for _ in $(seq 100); do [ "$(prop wxtoken.service ActiveState)" = inactive ] && break; sleep 0.1; done
calls0=$(( $(ctl_get "/calls?path=/cgi-bin/get_api_domain_ip") + $(ctl_get "/calls?path=/cgi-bin/stable_token") ))
before=$(started wxtoken.service)
runuser -u www-data -- sh -c 'for i in $(seq 50); do : >"/var/lib/wxtoken/requests/$(printf "bogus%s" "$i" | sha256sum | cut -c1-64)"; done; : >"$1"' \
    sh "/var/lib/wxtoken/requests/$(sha "$old")"
for _ in $(seq 100); do
    [ "$(started wxtoken.service)" != "$before" ] && [ "$(prop wxtoken.service ActiveState)" = inactive ] \
        && [ -z "$(ls -A /var/lib/wxtoken/requests)" ] && break
    sleep 0.1
done
expect "51 stale reports: all consumed" "" "$(ls -A /var/lib/wxtoken/requests | head -n3)"
expect "51 stale reports: no upstream call" 0 $(( $(ctl_get "/calls?path=/cgi-bin/get_api_domain_ip") + $(ctl_get "/calls?path=/cgi-bin/stable_token") - calls0 ))
expect "51 stale reports: wxtoken.path still waits" "active waiting" "$(prop wxtoken.path ActiveState) $(prop wxtoken.path SubState)"
runuser -u www-data -- ls /var/lib/wxtoken/requests >/dev/null 2>&1 && fail "www-data cannot list requests/" "it can" \
    || ok "www-data cannot list /var/lib/wxtoken/requests"

# A request no run can remove (a directory with a file of root's inside) must not make the path
# unit start the service forever: the run sets the whole requests/ aside (.requests.old) and makes
# a fresh, empty one; the path unit goes on waiting, and a report made after it still works.
shop_starts() { journalctl -u wxtoken@shop.service --no-pager -o cat | grep -c '^Starting '; }
starts0=$(shop_starts)
mkdir -p /var/lib/wxtoken/shop/requests/stuck && : >/var/lib/wxtoken/shop/requests/stuck/x
for _ in $(seq 100); do
    [ "$(shop_starts)" -gt "$starts0" ] && [ "$(prop wxtoken@shop.service ActiveState)" = inactive ] \
        && [ -z "$(ls -A /var/lib/wxtoken/shop/requests)" ] && break
    sleep 0.1
done
sleep 2  # long enough for a loop to show, were there one
expect "an unremovable request: requests/ left empty" "" "$(ls -A /var/lib/wxtoken/shop/requests | head -n3)"
[ -e /var/lib/wxtoken/shop/.requests.old ] && ok "an unremovable request: set aside in .requests.old" \
    || fail "an unremovable request: set aside" "no /var/lib/wxtoken/shop/.requests.old"
starts=$(( $(shop_starts) - starts0 ))
[ "$starts" -ge 1 ] && [ "$starts" -le 2 ] && ok "an unremovable request: $starts start(s), no loop" \
    || fail "an unremovable request: no loop" "$starts starts"
expect "an unremovable request: wxtoken@shop.path still waits" "active waiting" \
    "$(prop wxtoken@shop.path ActiveState) $(prop wxtoken@shop.path SubState)"
out=$(/usr/local/bin/wxtoken status --out /var/lib/wxtoken/shop/access_token.json 2>&1)
has "an unremovable request: status names its owner" "owned by root" "$out"
# The path unit watches the new requests/: a report there starts the service again (one that
# names no current token: consumed without an upstream call).
starts1=$(shop_starts)
runuser -u www-data -- sh -c ': >"$1"' sh "/var/lib/wxtoken/shop/requests/$(printf bogus | sha256sum | cut -c1-64)"
for _ in $(seq 100); do
    [ "$(shop_starts)" -gt "$starts1" ] && [ -z "$(ls -A /var/lib/wxtoken/shop/requests)" ] && break
    sleep 0.1
done
[ "$(shop_starts)" -gt "$starts1" ] && ok "after requests/ was set aside, a report there starts the service" \
    || fail "after requests/ was set aside, a report" "wxtoken@shop.service not started"
expect "after requests/ was set aside, the report is consumed" "" "$(ls -A /var/lib/wxtoken/shop/requests | head -n3)"
rm -rf /var/lib/wxtoken/shop/.requests.old

echo DONE >>"$R"
