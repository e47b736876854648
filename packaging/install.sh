#!/bin/sh
# Installs wxtoken from the release tarball (this script's directory): the same files in the same
# places as `make install`, on a host with or without systemd.
#
#   ./install.sh                  # PREFIX=/usr/local: /usr/local/bin/wxtoken, units, man pages...
#   ./install.sh --prefix=/usr    # the packages' layout
#   ./install.sh --uninstall      # removes them; keeps /etc/wxtoken, /var/lib/wxtoken, the user
#   DESTDIR=/stage ./install.sh   # stage into another root: nothing is run on this host
#
# With systemd running (/run/systemd/system): systemd-sysusers creates the wxtoken user from the
# sysusers.d entry, systemctl daemon-reload; then enable wxtoken.timer and wxtoken.path.
# Without systemd (or with --cron): groupadd/useradd create the wxtoken system user and group,
# /var/lib/wxtoken is made wxtoken:wxtoken 0750, and /etc/cron.d/wxtoken runs
# `wxtoken refresh --config /etc/wxtoken/wxtoken.conf --quiet` every minute as user wxtoken; a new
# /etc/wxtoken/wxtoken.conf then names the secret file (WXTOKEN_SECRET_FILE=/etc/wxtoken/secret,
# which must be root:wxtoken 0640), since no LoadCredential= hands it over.
#
# Variables (as make install's): PREFIX, DESTDIR, BINDIR, LIBDIR, UNITDIR, SYSUSERSDIR, DATADIR,
# DOCDIR, MANDIR, BASHCOMPDIR, ZSHCOMPDIR, FISHCOMPDIR, HOOKDIR, READERDIR, CONFDIR, CRONDIR,
# STATEDIR. `make install` runs `install.sh --host-setup` (the user, the state directory, the cron
# file) after it has put the files in place.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
action=install
init=auto
for arg in "$@"; do
    case $arg in
        --uninstall) action=uninstall ;;
        --host-setup) action=host-setup ;;
        --cron) init=cron ;;
        --systemd) init=systemd ;;
        --prefix=*) PREFIX=${arg#--prefix=} ;;
        -h | --help) sed -n '2,/^set -eu/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument '$arg' (--help)" >&2; exit 2 ;;
    esac
done

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BINDIR=${BINDIR:-$PREFIX/bin}
LIBDIR=${LIBDIR:-$PREFIX/lib}
UNITDIR=${UNITDIR:-$LIBDIR/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$LIBDIR/sysusers.d}
DATADIR=${DATADIR:-$PREFIX/share}
DOCDIR=${DOCDIR:-$DATADIR/doc/wxtoken}
MANDIR=${MANDIR:-$DATADIR/man}
BASHCOMPDIR=${BASHCOMPDIR:-$DATADIR/bash-completion/completions}
ZSHCOMPDIR=${ZSHCOMPDIR:-$DATADIR/zsh/site-functions}
FISHCOMPDIR=${FISHCOMPDIR:-$DATADIR/fish/vendor_completions.d}
LIBEXECDIR=${LIBEXECDIR:-$LIBDIR/wxtoken}
HOOKDIR=${HOOKDIR:-$LIBEXECDIR/hooks}
READERDIR=${READERDIR:-$DATADIR/wxtoken}
CONFDIR=${CONFDIR:-/etc/wxtoken}
CRONDIR=${CRONDIR:-/etc/cron.d}
STATEDIR=${STATEDIR:-/var/lib/wxtoken}

UNITS="wxtoken.service wxtoken.timer wxtoken.path wxtoken@.service wxtoken@.timer wxtoken@.path"
HOOKS="memcached mysql-wx_token"

log() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

if [ "$init" = auto ]; then
    if [ -d /run/systemd/system ]; then init=systemd; else init=cron; fi
fi

# sub FROM TO SRC DST MODE: SRC with FROM replaced by TO, written atomically to DST.
sub() {
    mkdir -p "$(dirname "$4")"
    sed -e "s|$1|$2|g" "$3" >"$4.tmp"
    chmod "$5" "$4.tmp"
    mv -f "$4.tmp" "$4"
}

install_files() {
    d=$DESTDIR
    [ -x "$here/bin/wxtoken" ] || die "$here/bin/wxtoken not found: run me from the unpacked tarball"
    install -Dpm0755 "$here/bin/wxtoken" "$d$BINDIR/wxtoken"
    for u in $UNITS; do
        mkdir -p "$d$UNITDIR"
        sed -e "s|/usr/bin/wxtoken|$BINDIR/wxtoken|g" -e "s|file:/usr/share/doc/wxtoken/|file:$DOCDIR/|g" \
            "$here/systemd/$u" >"$d$UNITDIR/$u.tmp"
        chmod 0644 "$d$UNITDIR/$u.tmp"
        mv -f "$d$UNITDIR/$u.tmp" "$d$UNITDIR/$u"
    done
    install -Dpm0644 "$here/systemd/wxtoken.sysusers" "$d$SYSUSERSDIR/wxtoken.conf"
    mkdir -p "$d$DOCDIR"
    sed -e "/WXTOKEN_ON_CHANGE=/s|/usr/lib/wxtoken/|$LIBEXECDIR/|g" "$here/wxtoken.conf" >"$d$DOCDIR/wxtoken.conf.example"
    sed -e "s|/usr/bin/wxtoken|$BINDIR/wxtoken|g" "$here/cron.d/wxtoken" >"$d$DOCDIR/wxtoken.cron"
    chmod 0644 "$d$DOCDIR/wxtoken.conf.example" "$d$DOCDIR/wxtoken.cron"
    install -pm0644 "$here/README.md" "$d$DOCDIR/README.md"
    install -d -m0755 "$d$CONFDIR"
    # Never overwrite an admin's settings. A cron host names the secret file (no LoadCredential=).
    if [ ! -e "$d$CONFDIR/wxtoken.conf" ]; then
        if [ "$init" = cron ]; then
            sed -e "s|^#WXTOKEN_SECRET_FILE=.*|WXTOKEN_SECRET_FILE=$CONFDIR/secret|" \
                "$d$DOCDIR/wxtoken.conf.example" >"$d$CONFDIR/wxtoken.conf"
            chmod 0644 "$d$CONFDIR/wxtoken.conf"
        else
            install -pm0644 "$d$DOCDIR/wxtoken.conf.example" "$d$CONFDIR/wxtoken.conf"
        fi
    fi
    for m in "$here"/man/man1/wxtoken*.1; do
        install -Dpm0644 "$m" "$d$MANDIR/man1/${m##*/}"
    done
    install -Dpm0644 "$here/completions/wxtoken.bash" "$d$BASHCOMPDIR/wxtoken"
    install -Dpm0644 "$here/completions/_wxtoken" "$d$ZSHCOMPDIR/_wxtoken"
    install -Dpm0644 "$here/completions/wxtoken.fish" "$d$FISHCOMPDIR/wxtoken.fish"
    for h in $HOOKS; do install -Dpm0755 "$here/contrib/hooks/$h" "$d$HOOKDIR/$h"; done
    install -Dpm0644 "$here/contrib/php/wxtoken.php" "$d$READERDIR/php/wxtoken.php"
    install -Dpm0644 "$here/contrib/python/wxtoken_reader.py" "$d$READERDIR/python/wxtoken_reader.py"
    if [ "$init" = cron ] && [ -n "$d" ]; then
        # Staged for a root without systemd: the cron file goes in too (nothing is run).
        sub /usr/bin/wxtoken "$BINDIR/wxtoken" "$here/cron.d/wxtoken" "$d$CRONDIR/wxtoken" 0644
    fi
}

# The wxtoken user and group, the state directory, and (without systemd) the cron file.
host_setup() {
    if [ "$init" = systemd ]; then
        command -v systemd-sysusers >/dev/null && systemd-sysusers "$SYSUSERSDIR/wxtoken.conf"
        systemctl daemon-reload || true
        log "next: put WXTOKEN_APPID in $CONFDIR/wxtoken.conf, the secret in $CONFDIR/secret (root, 0600),"
        log "      then: systemctl enable --now wxtoken.timer wxtoken.path"
        return
    fi
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    getent group wxtoken >/dev/null || groupadd --system wxtoken
    getent passwd wxtoken >/dev/null || useradd --system --gid wxtoken --home-dir "$STATEDIR" \
        --no-create-home --shell "$nologin" --comment "WeChat access token refresher" wxtoken
    install -d -o wxtoken -g wxtoken -m 0750 "$STATEDIR"
    # The cron file of the tarball or of the repository (packaging/cron.d, for make install).
    sub /usr/bin/wxtoken "$BINDIR/wxtoken" "$here/cron.d/wxtoken" "$CRONDIR/wxtoken" 0644
    log "no systemd running: $CRONDIR/wxtoken runs $BINDIR/wxtoken every minute as user wxtoken"
    log "next: put WXTOKEN_APPID in $CONFDIR/wxtoken.conf (and WXTOKEN_SECRET_FILE=$CONFDIR/secret),"
    log "      the secret: install -m 0640 -o root -g wxtoken /dev/stdin $CONFDIR/secret"
}

uninstall() {
    d=$DESTDIR
    if [ -z "$d" ] && [ "$init" = systemd ]; then
        systemctl disable --now wxtoken.timer wxtoken.path 2>/dev/null || true
        for t in /etc/systemd/system/timers.target.wants/wxtoken@*.timer \
            /etc/systemd/system/paths.target.wants/wxtoken@*.path; do
            [ -e "$t" ] || [ -L "$t" ] || continue
            systemctl disable --now "${t##*/}" || true
        done
    fi
    rm -f "$d$BINDIR/wxtoken" "$d$SYSUSERSDIR/wxtoken.conf" "$d$CRONDIR/wxtoken"
    for u in $UNITS; do rm -f "$d$UNITDIR/$u"; done
    rm -f "$d$DOCDIR/wxtoken.conf.example" "$d$DOCDIR/wxtoken.cron" "$d$DOCDIR/README.md"
    rmdir "$d$DOCDIR" 2>/dev/null || true
    rm -f "$d$MANDIR/man1/wxtoken.1" "$d$MANDIR/man1/"wxtoken-*.1
    rm -f "$d$BASHCOMPDIR/wxtoken" "$d$ZSHCOMPDIR/_wxtoken" "$d$FISHCOMPDIR/wxtoken.fish"
    for h in $HOOKS; do rm -f "$d$HOOKDIR/$h"; done
    rmdir "$d$HOOKDIR" "$d$LIBEXECDIR" 2>/dev/null || true
    rm -f "$d$READERDIR/php/wxtoken.php" "$d$READERDIR/python/wxtoken_reader.py"
    rmdir "$d$READERDIR/php" "$d$READERDIR/python" "$d$READERDIR" 2>/dev/null || true
    if [ -z "$d" ] && [ "$init" = systemd ]; then systemctl daemon-reload || true; fi
    log "kept: $CONFDIR (settings, secrets), $STATEDIR (tokens) and the wxtoken user."
    log "remove them with: rm -r $CONFDIR $STATEDIR && userdel wxtoken"
}

case $action in
    install)
        install_files
        if [ -z "$DESTDIR" ]; then host_setup; fi
        ;;
    host-setup) host_setup ;;
    uninstall) uninstall ;;
esac
