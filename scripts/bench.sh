#!/usr/bin/env bash
# Wall time of `nodekeeper ctl status` vs `supervisorctl status` vs one raw curl call of
# supervisor.getAllProcessInfo, against the same supervisord with 10 and with 500 programs.
#
#   scripts/bench.sh                       # sizes 10 and 500, median of 15 runs each
#   scripts/bench.sh --runs 31 --warmup 2  # extra args go to scripts/bench_ctl.py (see --help)
#   scripts/bench.sh --sizes 10 200 500 --json bench.json
#
# Installs what it needs (the venv's supervisord, curl via apt-get when root), builds
# target/release/nodekeeper, and tears every supervisord down again, also on error or Ctrl-C.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ " $* " == *" -h "* || " $* " == *" --help "* ]]; then
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    echo
    exec "$PYTHON" "$ROOT/scripts/bench_ctl.py" --help
fi

# ensure_curl: the floor measurement needs curl; a minimal Debian may not have it.
ensure_curl() {
    command -v curl >/dev/null 2>&1 && return 0
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        info "installing curl with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq curl >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq curl >/dev/null 2>&1; } \
            || die "apt-get install curl failed"
    else
        die "curl not found (install it: apt-get install curl)"
    fi
}

WORKDIR=""

# cleanup: backstop for the Python helper's own teardown (e.g. if it was SIGKILLed).
cleanup() {
    local pidfile
    [[ -n "$WORKDIR" && -d "$WORKDIR" ]] || return 0
    for pidfile in "$WORKDIR"/n*/supervisord.pid; do
        [[ -e "$pidfile" ]] || continue
        supervisord_stop "$(dirname "$pidfile")/supervisord.conf" "$pidfile" || true
    done
    rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck disable=SC2119 # no extra pip packages needed here
ensure_venv
ensure_curl

step "cargo build --release --bin nodekeeper"
ctl_bin="$ROOT/target/release/nodekeeper"
ctl_arg=("--ctl" "$ctl_bin")
build_rc=0
(cd "$ROOT" && cargo build --release --bin nodekeeper) || build_rc=$?
if ((build_rc > 128)); then
    exit "$build_rc" # interrupted (e.g. Ctrl-C), not a build failure
elif ((build_rc != 0)); then
    info "warning: cargo build failed; nodekeeper ctl will not be measured"
    ctl_arg=("--ctl" "")
elif ! "$ctl_bin" ctl --help >/dev/null 2>&1; then
    info "warning: '$ctl_bin ctl' is not available yet (ctl --help fails); it will not be measured"
    ctl_arg=("--ctl" "")
fi

step "benchmark"
WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/nodekeeper-bench.XXXXXX")"
"$VENV/bin/python" "$ROOT/scripts/bench_ctl.py" --workdir "$WORKDIR" "${ctl_arg[@]}" "$@"
