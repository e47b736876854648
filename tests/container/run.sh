#!/usr/bin/env bash
# The container image end to end (tests/container.rs): packaging/container/build.sh builds it with
# podman into a private store under a scratch directory, then it runs against the fake WeChat API on
# this host's 127.0.0.1 (--network host) with the secret bind-mounted (10001:10001, 0400) and the
# token directory a bind-mounted volume (10001:10001, 0750). Prints "ok ..." per check and
# "MEASURED ..." lines; exits non-zero on the first failed check.
#
#   run.sh BINARY          the wxtoken binary to put in the image (the portable build)
#
# Environment: WXTOKEN_FAKE_BIN (the fake WeChat server); WXTOKEN_CONTAINER_KEEP=1 keeps the
# scratch directory (image store, staged root, logs).
#
# podman here: the store is vfs (works on any file system, no fuse-overlayfs), the cgroup manager
# cgroupfs (no systemd needed). runc is used when installed: crun 1.8 refuses to start on a host
# whose cgroup v2 hierarchy has controllers while v1 is mounted too ("cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2"), as on the CI machine. The ulimits are set below
# the host's hard limits: podman's defaults (1048576 open files and processes) are above them there,
# and raising them is refused ("setrlimit `RLIMIT_NOFILE`: Operation not permitted").
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: run.sh BINARY}
fake_bin=${WXTOKEN_FAKE_BIN:?WXTOKEN_FAKE_BIN: the fake WeChat server}
uid=10001
readers=10002
appid=wx1234567890abcdef
secret_text=demo-secret-not-a-real-one

log() { echo "container: $*" >&2; }
die() { log "FAIL $*"; exit 1; }
ok() { echo "ok $*"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }   # secs START END
[ "$(id -u)" = 0 ] || die "must run as root (podman's rootful store, chown of the mounts)"
[ -x "$bin" ] || die "$bin not found (make portable)"

work=$(mktemp -d /var/tmp/wxtoken-container.XXXXXX)
chmod 0711 "$work"   # the readers below must reach state/; nothing else is listed
podman=(podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs
    --cgroup-manager cgroupfs)
command -v runc >/dev/null && podman+=(--runtime runc)
run_opts=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --read-only --read-only-tmpfs=false)
tag=localhost/wxtoken:test
fake_pid=
cleanup() {
    if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fi
    "${podman[@]}" rm -a -f -t 0 >/dev/null 2>&1 || true
    "${podman[@]}" system reset --force >/dev/null 2>&1 || true
    if [ "${WXTOKEN_CONTAINER_KEEP:-}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 143" TERM INT HUP

# 1. Build: the staged root and the image, nothing pulled.
t0=$(date +%s.%N)
IMAGE_ROOT=$work/image-root PODMAN="${podman[*]}" sh "$repo/packaging/container/build.sh" "$bin" "$tag" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; die "build.sh failed"; }
t_build=$(date +%s.%N)
ok "image built without pulling: $(grep -c '^STEP' "$work/build.log") steps, FROM scratch"

# 2. What the image holds: exactly the binary, its libraries (as ldd lists them here), the CA
# bundle, passwd/group/nsswitch.conf; no shell; root's files but the token directory.
mnt=$("${podman[@]}" image mount "$tag")
files=$(cd "$mnt" && find . ! -type d | sed 's|^\./||' | sort)
expected=$( {
    printf '%s\n' usr/bin/wxtoken etc/passwd etc/group etc/nsswitch.conf etc/ssl/certs/ca-certificates.crt
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sed 's|^/||'
} | sort)
if [ "$files" != "$expected" ]; then
    diff <(echo "$expected") <(echo "$files") >&2 || true
    die "the image's files differ from the list (< expected, > in the image)"
fi
ok "the image holds $(echo "$files" | wc -l) files, as listed: $(echo "$files" | tr '\n' ' ')"
for sh in bin/sh usr/bin/sh bin/bash bin/busybox usr/bin/env; do
    [ -e "$mnt/$sh" ] && die "the image has $sh"
done
(cd "$mnt" && find . -name '*sh' -type f | grep -q .) && die "the image has a file named *sh"
ok "no shell in the image"
owners=$(cd "$mnt" && find . -printf '%u:%g %m %p\n' | grep -v '^root:root ' || true)
[ "$owners" = "$uid:$uid 750 ./var/lib/wxtoken" ] || die "owners: only /var/lib/wxtoken should be $uid's, 0750: $owners"
ok "everything is root's but /var/lib/wxtoken ($uid:$uid 0750)"
rootfs_bytes=$(du -sb "$mnt" | cut -f1)
"${podman[@]}" image unmount "$tag" >/dev/null

cfg=$("${podman[@]}" image inspect -f '{{.Config.User}}|{{json .Config.Volumes}}|{{json .Config.Cmd}}' "$tag")
[ "$cfg" = "$uid:$uid|{\"/var/lib/wxtoken\":{}}|[\"wxtoken\",\"refresh\",\"--every\",\"60\",\"--out\",\"/var/lib/wxtoken/access_token.json\"]" ] \
    || die "image config: $cfg"
ok "image config: USER $uid:$uid, VOLUME /var/lib/wxtoken, CMD wxtoken refresh --every 60 --out ..."
image_bytes=$("${podman[@]}" image inspect -f '{{.Size}}' "$tag")
echo "MEASURED image size $image_bytes bytes (podman image inspect), root filesystem $rootfs_bytes bytes (du -sb)"
echo "MEASURED image build $(secs "$t0" "$t_build") s"

# 3. The fake WeChat API on 127.0.0.1, the secret and the token directory on this host.
. "$(dirname "$0")/../systemd/fake.sh"
start_fake "$work/fake.log" --exit-after 300

printf '%s' "$secret_text" >"$work/secret"
chown "$uid:$uid" "$work/secret" && chmod 0400 "$work/secret"
# The token directory in the readers' group, as docs/CONTAINERS.md prepares it for php-fpm.
install -d -m 0750 -o "$uid" -g "$readers" "$work/state"
common=("${run_opts[@]}" --network host --group-add "$readers"
    -e WXTOKEN_APPID="$appid" -e WXTOKEN_SECRET_FILE=/etc/wxtoken/secret
    -e WXTOKEN_API_BASE="$url" -e WXTOKEN_GROUP="$readers"
    -v "$work/secret:/etc/wxtoken/secret:ro" -v "$work/state:/var/lib/wxtoken")

# 4. The checks as the container's user, with no network at all (offline: no call is made): the
# process's uid and the image's trust store.
"${podman[@]}" run --rm "${run_opts[@]}" --network none -e WXTOKEN_APPID="$appid" \
    -e WXTOKEN_SECRET_FILE=/etc/wxtoken/secret -v "$work/secret:/etc/wxtoken/secret:ro" \
    -v "$work/state:/var/lib/wxtoken" "$tag" wxtoken check --unit none >"$work/check.log" 2>&1 \
    || { cat "$work/check.log" >&2; die "wxtoken check failed in the container"; }
grep -q "^INFO user: checking as user wxtoken (uid $uid)" "$work/check.log" \
    || { cat "$work/check.log" >&2; die "check did not run as user wxtoken (uid $uid)"; }
grep -q '^PASS trust: [1-9][0-9]* root certificate' "$work/check.log" \
    || { cat "$work/check.log" >&2; die "no trust store in the image"; }
ok "$(grep '^INFO user:' "$work/check.log" | cut -d: -f2 | cut -d: -f1 | sed 's/^ //'); $(grep '^PASS trust:' "$work/check.log" | sed 's/ (the system.*//')"

# 5. The refresh: the image's own command (--every 60, stopped with SIGTERM) when this binary has
# --every, else one plain `refresh` (until --every lands, the command is given explicitly).
t_run=$(date +%s.%N)
if "$bin" refresh --help | grep -q -- '--every'; then
    cid=$("${podman[@]}" run -d "${common[@]}" "$tag")
    for _ in $(seq 300); do
        [ -s "$work/state/access_token.json" ] && break
        sleep 0.1
    done
    [ -s "$work/state/access_token.json" ] || { "${podman[@]}" logs "$cid" >&2; die "no token file after 30 s"; }
    pid=$("${podman[@]}" inspect -f '{{.State.Pid}}' "$cid")
    ids=$(awk '/^(Uid|Gid|Groups):/ { $1 = $1; print }' "/proc/$pid/status" | tr '\n' ';')
    # podman adds the user's own group to the supplementary ones; the readers' is --group-add's.
    case $ids in
        "Uid: $uid $uid $uid $uid;Gid: $uid $uid $uid $uid;Groups: "*" $readers;" | \
            "Uid: $uid $uid $uid $uid;Gid: $uid $uid $uid $uid;Groups: $readers;") ;;
        *) die "the container's process runs with $ids" ;;
    esac
    case $ids in *" 0 "* | *" 0;"*) die "the container's process has id 0: $ids" ;; esac
    ok "the container's process (host pid $pid): $ids"
    t_stop=$(date +%s.%N)
    "${podman[@]}" stop -t 20 "$cid" >/dev/null
    code=$("${podman[@]}" inspect -f '{{.State.ExitCode}}' "$cid")
    stop_s=$(secs "$t_stop" "$(date +%s.%N)")
    "${podman[@]}" logs "$cid" >"$work/refresh.log" 2>&1
    [ "$code" = 0 ] || { cat "$work/refresh.log" >&2; die "exit status $code after SIGTERM (want 0)"; }
    ok "the default command (--every 60) ran until SIGTERM, then exited 0 in ${stop_s} s"
else
    log "this wxtoken has no refresh --every yet: one plain refresh instead of the image's command"
    "${podman[@]}" run --rm "${common[@]}" "$tag" \
        wxtoken refresh --out /var/lib/wxtoken/access_token.json >"$work/refresh.log" 2>&1 \
        || { cat "$work/refresh.log" >&2; die "wxtoken refresh failed in the container"; }
    ok "wxtoken refresh (no --every in this build yet) exited 0"
fi
t_end=$(date +%s.%N)
grep -q "refreshed" "$work/refresh.log" || { cat "$work/refresh.log" >&2; die "no 'refreshed' in the log"; }

# 6. The token file on the host: the container user's, the readers' group, 0640; the fake's token.
st=$(stat -c '%u:%g %a' "$work/state/access_token.json")
[ "$st" = "$uid:$readers 640" ] || die "access_token.json is $st, want $uid:$readers 640"
grep -q '"access_token": *"[^"]\{20,\}"' "$work/state/access_token.json" \
    || die "access_token.json holds no token: $(head -c 300 "$work/state/access_token.json")"
ok "access_token.json on the volume: $st (owner: the container's user; group: WXTOKEN_GROUP), holds a token"
# A reader in the readers' group only (php-fpm's worker, uid 10003 here) reads it; another cannot.
setpriv --reuid 10003 --regid "$readers" --clear-groups head -c 16 "$work/state/access_token.json" >/dev/null \
    || die "a reader with gid $readers cannot read the token file"
setpriv --reuid 10003 --regid 10004 --clear-groups head -c 16 "$work/state/access_token.json" >/dev/null 2>&1 \
    && die "a user outside the readers' group can read the token file"
ok "a user in group $readers reads the token file; one outside it cannot"
echo "MEASURED refresh in the container $(secs "$t_run" "$t_end") s"

# 7. A secret others may read is refused (78), as on a host.
cp "$work/secret" "$work/secret-open" && chmod 0644 "$work/secret-open"
rc=0
"${podman[@]}" run --rm "${common[@]}" -v "$work/secret-open:/etc/wxtoken/open:ro" \
    -e WXTOKEN_SECRET_FILE=/etc/wxtoken/open "$tag" \
    wxtoken refresh --force --out /var/lib/wxtoken/access_token.json >"$work/open.log" 2>&1 || rc=$?
[ "$rc" = 78 ] || { cat "$work/open.log" >&2; die "a secret of mode 0644 gave exit $rc, want 78"; }
ok "a world-readable secret is refused with exit 78"
echo "DONE"
