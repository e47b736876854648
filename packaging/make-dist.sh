#!/bin/sh
# make-dist.sh BIN ASSETS OUTDIR NAME: the release tarball OUTDIR/NAME.tar.gz and its .sha256
# (`make dist`). NAME/ holds the binary, the units and sysusers entry, the cron file, the example
# settings, the man pages and completions (ASSETS, from examples/gen-docs.rs), the hooks and
# readers of contrib/, README.md, docs/PACKAGING.md and install.sh. Reproducible: files sorted,
# owned by root, dated by the last commit (SOURCE_DATE_EPOCH when set).
set -eu
bin=$1 assets=$2 outdir=$3 name=$4
repo=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$bin" ] || { echo "make-dist.sh: $bin not found (make portable)" >&2; exit 1; }
for f in man/wxtoken.1 completions/wxtoken.bash completions/_wxtoken completions/wxtoken.fish; do
    [ -f "$assets/$f" ] || { echo "make-dist.sh: $assets/$f not found (make docs)" >&2; exit 1; }
done
mkdir -p "$outdir"
stage=$(mktemp -d "$outdir/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
t=$stage/$name
install -Dpm0755 "$bin" "$t/bin/wxtoken"
install -pm0755 "$repo/packaging/install.sh" "$t/install.sh"
for u in wxtoken.service wxtoken.timer wxtoken.path wxtoken@.service wxtoken@.timer wxtoken@.path wxtoken.sysusers; do
    install -Dpm0644 "$repo/systemd/$u" "$t/systemd/$u"
done
install -Dpm0644 "$repo/packaging/cron.d/wxtoken" "$t/cron.d/wxtoken"
install -pm0644 "$repo/packaging/wxtoken.conf" "$t/wxtoken.conf"
install -pm0644 "$repo/README.md" "$t/README.md"
install -Dpm0644 "$repo/docs/PACKAGING.md" "$t/docs/PACKAGING.md"
for m in "$assets"/man/wxtoken*.1; do install -Dpm0644 "$m" "$t/man/man1/${m##*/}"; done
for c in wxtoken.bash _wxtoken wxtoken.fish; do install -Dpm0644 "$assets/completions/$c" "$t/completions/$c"; done
for h in "$repo"/contrib/hooks/*; do install -Dpm0755 "$h" "$t/contrib/hooks/${h##*/}"; done
install -Dpm0644 "$repo/contrib/php/wxtoken.php" "$t/contrib/php/wxtoken.php"
install -Dpm0644 "$repo/contrib/python/wxtoken_reader.py" "$t/contrib/python/wxtoken_reader.py"
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
(cd "$stage" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --format=gnu -cf - "$name") | gzip -n -9 >"$outdir/$name.tar.gz.tmp.$$"
mv -f "$outdir/$name.tar.gz.tmp.$$" "$outdir/$name.tar.gz"
(cd "$outdir" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$outdir/$name.tar.gz: $(stat -c %s "$outdir/$name.tar.gz") bytes"
cat "$outdir/$name.tar.gz.sha256"
