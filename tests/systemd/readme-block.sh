#!/usr/bin/env bash
# Prints the fenced block that follows `<!-- ... : NAME -->` in the README, so the tests install
# exactly what the README tells admins to (the documentation cannot drift from what is tested).
#   readme-block.sh NAME [README]
set -euo pipefail
name=$1
readme=${2:-$(cd "$(dirname "$0")/../.." && pwd)/README.md}
out=$(awk -v m=": $name -->" '
    index($0, m) && /^<!--/ { found = 1; next }
    found == 1 && /^```/ { found = 2; next }
    found == 2 && /^```/ { exit }
    found == 2 { print }
' "$readme")
[ -n "$out" ] || { echo "readme-block.sh: no block '$name' in $readme" >&2; exit 1; }
printf '%s\n' "$out"
