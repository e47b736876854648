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
# php-fpm's user joins the readers' group, as the README tells admins to.
usermod -aG wxtoken www-data

# --- timers --------------------------------------------------------------------------------------
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

echo DONE >>"$R"
