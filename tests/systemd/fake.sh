# Sourced by the container test scripts: start_fake LOG [FAKE-WECHAT ARGS...] starts the fake
# WeChat API ($fake_bin) on 127.0.0.1 and sets fake_pid, url and (with --control) control from
# the addresses it prints. Needs die() from the sourcing script.
start_fake() {
    local out=$1 want_control=
    shift
    case " $* " in *" --control "*) want_control=1 ;; esac
    "$fake_bin" --listen 127.0.0.1:0 "$@" >"$out" 2>&1 &
    fake_pid=$!
    url= control=
    for _ in $(seq 100); do
        url=$(grep -o 'listening on http://[0-9.:]*' "$out" | head -n1 | sed 's/^listening on //') || true
        control=$(grep -o 'control on http://[0-9.:]*' "$out" | head -n1 | sed 's/^control on //') || true
        [ -n "$url" ] && { [ -z "$want_control" ] || [ -n "$control" ]; } && return 0
        kill -0 "$fake_pid" 2>/dev/null || { cat "$out" >&2; die "fake WeChat server exited"; }
        sleep 0.1
    done
    cat "$out" >&2
    die "the fake WeChat server did not print its address"
}
