# Sourced by bench/*.sh: splice FILE NAME CONTENT_FILE replaces what lies between
# `<!-- NAME:begin -->` and `<!-- NAME:end -->` in FILE (markers kept) with CONTENT_FILE, so the
# generated parts of the docs are rewritten by the scripts and never edited by hand.
splice() {
    local file=$1 name=$2 content=$3
    grep -q "^<!-- $name:begin -->\$" "$file" && grep -q "^<!-- $name:end -->\$" "$file" || {
        echo "$file lacks the <!-- $name:begin --> / <!-- $name:end --> markers" >&2
        return 1
    }
    awk -v b="<!-- $name:begin -->" -v e="<!-- $name:end -->" -v c="$content" '
        $0 == b { print; while ((getline l < c) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$file" >"$file.tmp"
    mv "$file.tmp" "$file"
}
