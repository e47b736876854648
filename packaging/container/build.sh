#!/bin/sh
# Stages the wxtoken image's root filesystem and builds the image (packaging/container/Containerfile)
# without pulling anything: FROM scratch plus the binary, its shared libraries from this host, the
# CA bundle, /etc/passwd and /etc/group with user wxtoken (10001).
#
#   packaging/container/build.sh [BINARY [TAG]]       `make image` runs it with the portable binary
#
# BINARY   default $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/wxtoken (make portable); the
#          native build ($CARGO_TARGET_DIR/release/wxtoken) works too, with its newer glibc's
#          libraries copied alongside.
# TAG      default localhost/wxtoken:VERSION (Cargo.toml's version)
#
# Environment:
#   IMAGE_ROOT   where to stage the root filesystem (default target/image-root; emptied first)
#   CA_BUNDLE    the CA certificates (default /etc/ssl/certs/ca-certificates.crt)
#   PODMAN       the podman (or buildah) command, with global options, word-split:
#                e.g. PODMAN="podman --storage-driver vfs" (default podman)
#   STAGE_ONLY=1 stage the root filesystem, build no image (for systemd-nspawn or chroot)
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
bin=${1:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/wxtoken}
tag=${2:-localhost/wxtoken:$version}
root=${IMAGE_ROOT:-target/image-root}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
podman=${PODMAN:-podman}
uid=10001

die() { echo "build.sh: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin not found: run 'make portable' (or give the binary as the first argument)"
[ -s "$ca" ] || die "$ca not found: install ca-certificates (or set CA_BUNDLE)"
command -v ldd >/dev/null || die "ldd not found (libc-bin)"

rm -rf "$root"
mkdir -p "$root"
install -Dm0755 "$bin" "$root/usr/bin/wxtoken"

# The shared libraries, each at the path the build host's loader found it: the same loader (copied
# too) then finds them there. "=> /path" lines and the loader's own line; linux-vdso has no file.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') || true
if ldd "$bin" | grep -q 'not found'; then
    ldd "$bin" >&2
    die "a shared library of $bin is missing on this host"
fi
[ -n "$libs" ] || ldd "$bin" 2>&1 | grep -q 'statically linked' || die "ldd $bin listed no libraries"
for lib in $libs; do
    install -Dm0755 "$lib" "$root$lib"
done
# glibc before 2.34 loads the NSS modules with dlopen (ldd does not show them): users and groups
# (WXTOKEN_GROUP by name) and DNS. From 2.34 on they are part of libc.so.6.
libc=$(printf '%s\n' $libs | grep '/libc\.so\.6$' | head -n1) || true
if [ -n "$libc" ]; then
    case $(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }') in
        2.1[0-9] | 2.2[0-9] | 2.3[0-3])
            for extra in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
                [ -e "${libc%/*}/$extra" ] && install -Dm0755 "${libc%/*}/$extra" "$root${libc%/*}/$extra"
            done ;;
    esac
fi

install -Dm0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    "wxtoken:x:$uid:$uid:wxtoken:/var/lib/wxtoken:/sbin/nologin" >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' "wxtoken:x:$uid:" >"$root/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
install -d -m0755 "$root/etc/wxtoken"
install -d -m0750 "$root/var/lib/wxtoken"
# As root, the staged tree is the image's as it will run (for systemd-nspawn or chroot); the image
# itself gets the owner from the Containerfile's COPY --chown either way.
[ "$(id -u)" = 0 ] && chown "$uid:$uid" "$root/var/lib/wxtoken"

files=$(find "$root" -type f | wc -l)
echo "$root: $files files, $(du -sb "$root" | cut -f1) bytes"
[ "${STAGE_ONLY:-}" = 1 ] && exit 0

# shellcheck disable=SC2086 # PODMAN may carry global options
$podman build --pull=never --build-arg "VERSION=$version" \
    -f packaging/container/Containerfile -t "$tag" "$root"
echo "$tag"
