#!/usr/bin/env bash
# nodekeeper's benchmarks, against real supervisords started in a temporary directory.
#
#   scripts/bench.sh [ctl] [ARGS]   wall time of `nodekeeper ctl status` vs `supervisorctl status` vs
#                                   one raw curl of supervisor.getAllProcessInfo, with 10 and with 500
#                                   programs (ARGS go to scripts/bench_ctl.py, e.g. --runs 31)
#   scripts/bench.sh daemon [ARGS]  the control loop (`nodekeeper run`) against simulated nodes:
#                                   crash and hang detection, a slow node left alone, a slow
#                                   neighbour, daemon RSS/CPU, one tick at 200 nodes, supervisord's
#                                   CPU, and (hostloss) two hosts sharing a 3-member etcd: host loss
#                                   -> new leader, time with two producers, etcd traffic at idle;
#                                   about 25 minutes (ARGS go to scripts/bench_daemon.py, e.g.
#                                   --phases crash --crashes 40, or --phases hostloss --hostlosses 10)
#   scripts/bench.sh backup [ARGS]  archive throughput: nodekeeper's backup engine vs
#                                   `tar -cf - . | zstd -3` on a generated 1 GB data directory
#                                   (target/bench-data/backup, made once), 3 runs each (ARGS go to
#                                   benches/backup.rs, e.g. --runs 5 or --gb 0.2 --data DIR)
#
# Installs what it needs (the venv's supervisord, curl via apt-get when root), builds the release
# binaries, and tears every supervisord and daemon down again, also on error or Ctrl-C.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE="ctl"
case "${1:-}" in
    ctl | daemon | backup)
        MODE="$1"
        shift
        ;;
esac
BENCH_PY="$ROOT/scripts/bench_$MODE.py"

if [[ " $* " == *" -h "* || " $* " == *" --help "* ]]; then
    sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    [[ "$MODE" == backup ]] && exit 0
    echo
    exec "$PYTHON" "$BENCH_PY" --help
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

# cleanup: backstop for the Python helper's own teardown (e.g. if it was SIGKILLed): daemons
# first (so that none restarts a node being shut down), then every supervisord.
cleanup() {
    local pidfile pid
    [[ -n "$WORKDIR" && -d "$WORKDIR" ]] || return 0
    while IFS= read -r -d '' pidfile; do
        pid="$(pid_alive "$pidfile" "nodekeeper")" || continue
        kill -TERM "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
    done < <(find "$WORKDIR" -name nodekeeper.pid -print0)
    while IFS= read -r -d '' pidfile; do
        supervisord_stop "$(dirname "$pidfile")/supervisord.conf" "$pidfile" || true
    done < <(find "$WORKDIR" -name supervisord.pid -print0)
    # The hostloss phase's etcd members (their data directories etcd-NAME.data).
    while IFS= read -r -d '' pidfile; do
        pid="$(pid_alive "$pidfile" "etcd")" || continue
        kill -TERM "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    done < <(find "$WORKDIR" -name 'etcd-*.pid' -print0)
    rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "$MODE" == backup ]]; then
    ensure_apt zstd zstd
    ensure_apt tar tar
    step "cargo bench --bench backup (release build, then the benchmark)"
    need_cmd cargo "install the Rust toolchain, e.g. from https://rustup.rs"
    cd "$ROOT"
    exec cargo bench --bench backup -- --data "$ROOT/target/bench-data/backup" "$@"
fi

# shellcheck disable=SC2119 # no extra pip packages needed here
ensure_venv

if [[ "$MODE" == daemon ]]; then
    step "cargo build --release --workspace --bins"
    need_cmd cargo "install the Rust toolchain, e.g. from https://rustup.rs"
    (cd "$ROOT" && cargo build --release --workspace --bins) || die "cargo build --release --workspace --bins failed"
    step "benchmark: the control loop"
    WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/nodekeeper-bench.XXXXXX")"
    "$VENV/bin/python" "$BENCH_PY" --workdir "$WORKDIR" "$@"
    exit
fi

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
"$VENV/bin/python" "$BENCH_PY" --workdir "$WORKDIR" "${ctl_arg[@]}" "$@"
