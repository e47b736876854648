#!/bin/bash
# Runs inside the Debian 11 root that reach.sh enters (not booted: no systemd runs). Writes
# "ok NAME" / "FAIL NAME: details" lines and "DONE" to /results/report, extra output to
# /results/debug.log. WXTOKEN_TEST_URL: the fake WeChat API on the host's loopback.
set -u
R=/results/report
D=/results/debug.log
: >"$R"
: >"$D"
exec 2>>"$D"
ok()   { echo "ok $1" >>"$R"; }
fail() { echo "FAIL $1: $2" >>"$R"; }
expect() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected '$2', got '$3'"; fi; }
debug() { { echo "---- $*"; "$@"; } >>"$D" 2>&1; }

APPID=wx1234567890abcdef
SECRET=demo-secret-not-a-real-one
url=${WXTOKEN_TEST_URL:?}

cd /root && tar xzf wxtoken.tar.gz && top=$(ls -d /root/wxtoken-*-x86_64-linux) || { fail "unpack" "tar xzf failed"; echo DONE >>"$R"; exit 0; }
glibc=$(ldd --version 2>&1 | head -n1)
case $glibc in *" 2.31") ok "Debian 11 root: $glibc" ;; *) fail "the root's glibc" "$glibc" ;; esac

case $1 in
portable)
    out=$("$top/bin/wxtoken" --version 2>&1); rc=$?
    expect "tarball's wxtoken --version runs on glibc 2.31" 0 "$rc"
    [ "$rc" = 0 ] && case $out in "wxtoken "[0-9]*) ok "--version prints '$out'" ;; *) fail "--version output" "$out" ;; esac
    # The natively built binary (linked on the build host, glibc 2.36) cannot start here.
    out=$(/root/native/wxtoken --version 2>&1); rc=$?
    if [ "$rc" != 0 ] && grep -q "version \`GLIBC_2\.3[0-9]*' not found" <<<"$out"; then
        ok "the native build fails here: $(grep -o "GLIBC_2\.3[0-9]*' not found" <<<"$out" | sort -u | head -n3 | tr '\n' ' ')"
    else
        fail "the native build should fail with GLIBC_2.3x not found" "exit $rc: $out"
    fi
    # A real refresh against the fake WeChat API.
    (umask 077; printf '%s\n' "$SECRET" >/root/secret)
    out=$("$top/bin/wxtoken" refresh --appid "$APPID" --secret-file /root/secret --api-base "$url" \
        --out /root/state/access_token.json --timeout 5 --max-time 20 2>&1); rc=$?
    echo "$out" >>"$D"
    expect "refresh against the fake WeChat exits 0" 0 "$rc"
    grep -q '"access_token"' /root/state/access_token.json 2>/dev/null \
        && ok "the token file holds an access_token" || fail "token file" "$(head -c 200 /root/state/access_token.json 2>&1)"
    out=$("$top/bin/wxtoken" status --out /root/state/access_token.json 2>&1); rc=$?
    expect "wxtoken status: OK" "0" "$rc"
    ;;
cron)
    [ -d /run/systemd/system ] && fail "no systemd" "/run/systemd/system exists"
    out=$("$top/install.sh" 2>&1); rc=$?
    echo "$out" >>"$D"
    expect "install.sh (no options) succeeds" 0 "$rc"
    grep -q 'no systemd running' <<<"$out" && ok "install.sh saw no systemd: cron" || fail "install.sh chose" "$out"
    expect "wxtoken user: system, nologin, home /var/lib/wxtoken" "wxtoken /var/lib/wxtoken /usr/sbin/nologin" \
        "$(getent passwd wxtoken | awk -F: '{print $1, $6, $7}')"
    uid=$(id -u wxtoken 2>/dev/null || echo 99999)
    [ "$uid" -lt 1000 ] && ok "uid $uid is a system uid" || fail "system uid" "$uid"
    expect "/var/lib/wxtoken" "wxtoken:wxtoken 750" "$(stat -c '%U:%G %a' /var/lib/wxtoken 2>&1)"
    expect "/etc/cron.d/wxtoken's job" \
        "* * * * * wxtoken /usr/local/bin/wxtoken refresh --config /etc/wxtoken/wxtoken.conf --quiet" \
        "$(grep '^\*' /etc/cron.d/wxtoken)"
    expect "wxtoken.conf names the secret file" "WXTOKEN_SECRET_FILE=/etc/wxtoken/secret" \
        "$(grep '^WXTOKEN_SECRET_FILE=' /etc/wxtoken/wxtoken.conf)"
    # The admin's part: the account, and the secret root:wxtoken 0640 (docs/PACKAGING.md).
    { echo "WXTOKEN_APPID=$APPID"; echo "WXTOKEN_API_BASE=$url"; echo "WXTOKEN_TIMEOUT=5"; } >>/etc/wxtoken/wxtoken.conf
    printf '%s\n' "$SECRET" | install -m 0640 -o root -g wxtoken /dev/stdin /etc/wxtoken/secret
    out=$(setpriv --reuid=wxtoken --regid=wxtoken --init-groups /usr/local/bin/wxtoken check --config /etc/wxtoken/wxtoken.conf --unit none 2>&1); rc=$?
    echo "$out" >>"$D"
    expect "wxtoken check --config as user wxtoken" 0 "$rc"
    # Whatever cron mails goes to this stand-in for an MTA, which keeps it in /results/mail. A
    # second job prints every minute: its mail proves the capture works.
    cat >/usr/sbin/sendmail <<'EOF'
#!/bin/sh
{ echo "==== sendmail $*"; cat; } >>/results/mail
EOF
    chmod 0755 /usr/sbin/sendmail
    echo '* * * * * root echo canary from cron' >/etc/cron.d/canary
    cron || fail "cron" "did not start"
    start=$(date +%s)
    # The minute's tick: both jobs run; the canary's mail arrives once its job ended.
    while [ $(( $(date +%s) - start )) -lt 75 ]; do
        [ -f /var/lib/wxtoken/access_token.json ] && grep -q canary /results/mail 2>/dev/null && break
        sleep 1
    done
    sleep 3   # a mail from wxtoken's job of the same minute would be in by now
    waited=$(( $(date +%s) - start ))
    [ -f /var/lib/wxtoken/access_token.json ] && ok "cron's run wrote the token within $waited s" \
        || fail "token file" "none after $waited s"
    expect "token file owner, group, mode" "wxtoken:wxtoken 640" "$(stat -c '%U:%G %a' /var/lib/wxtoken/access_token.json 2>&1)"
    grep -q 'canary from cron' /results/mail 2>/dev/null && ok "cron's mail is captured (the canary's)" \
        || fail "mail capture" "no canary mail: $(cat /results/mail 2>&1 | head -c 300)"
    if grep -Eq 'Cron <wxtoken@|^To: wxtoken' /results/mail 2>/dev/null; then
        fail "cron mailed nothing for wxtoken" "$(grep -A12 'sendmail' /results/mail | head -c 800)"
    else
        ok "cron mailed nothing for wxtoken (a quiet, healthy minute)"
    fi
    debug cat /results/mail
    debug ls -la /var/lib/wxtoken
    ;;
esac
echo DONE >>"$R"
