#!/bin/sh
# glibc-max.sh BINARY [MAX]: prints the newest GLIBC_x.y symbol version BINARY needs (objdump -T);
# with MAX, fails (exit 1) when that is newer than MAX, naming the symbols that need it.
set -eu
bin=$1 max=${2:-}
[ -f "$bin" ] || { echo "glibc-max.sh: $bin not found" >&2; exit 2; }
versions=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -u -V)
newest=$(printf '%s\n' "$versions" | tail -n1)
echo "$bin: newest glibc symbol version GLIBC_$newest"
if [ -n "$max" ] && [ "$(printf '%s\n%s\n' "$max" "$newest" | sort -V | tail -n1)" != "$max" ]; then
    echo "glibc-max.sh: $bin needs glibc newer than $max:" >&2
    for v in $versions; do
        [ "$(printf '%s\n%s\n' "$max" "$v" | sort -V | tail -n1)" = "$max" ] && continue
        objdump -T "$bin" | grep "GLIBC_$v[) ]" >&2 || true
    done
    exit 1
fi
