#!/usr/bin/env bash
# nodekeeper demo: a private supervisord in $ROOT/.demo running three simulated Jormungandr nodes
# (nodekeeper-sim), kept running and in sync by `nodekeeper run`, with faults injected so that you
# can watch detection, restart and the restart log growing. Every node boots with the pool's secret;
# nodekeeper keeps exactly one of them holding the leader key and hands it over when needed.
#
#   scripts/demo.sh [--chain CHAIN] [--for SECONDS]
#                                     start, then watch (until Ctrl-C; 120 s when not on a terminal);
#                                     CHAIN: jormungandr (default), nodeos or cardano: the same demo
#                                     with simulated nodeos producers (booted paused, one resumed)
#                                     or cardano-nodes (booted non-producing, one forging by SIGHUP)
#   scripts/demo.sh start [--chain C] build; (re)start supervisord, the nodes and the daemon; return
#                                     (it prints the dashboard's URL and, with chromium, writes a
#                                     screenshot of it: .demo/dashboard.png)
#   scripts/demo.sh watch [--for S]   every ~20 s inject a fault (crash, stuck, hang, lag 20, bootstrap)
#                                     into the next node; show each detection, `nodekeeper status` and
#                                     the restart log. Ctrl-C stops watching; the demo keeps running
#   scripts/demo.sh status            supervisorctl, nodekeeper ctl and nodekeeper status (the leader
#                                     marked *, its next slot), restart log
#   scripts/demo.sh stop              stop the daemon, then supervisord and its nodes; no-op if not running
#   scripts/demo.sh --hosts 2 [start] [--for S]
#                                     two simulated hosts sharing one etcd (.demo/etcd): hosts a and b
#                                     (.demo/hosts/a|b), each its own supervisord with two nodes, the
#                                     event listener, the host's fence and `nodekeeper run` ([cluster]);
#                                     `watch` then kills the elected instance's whole host (SIGKILL of
#                                     its supervisord's session) every ~60 s, prints how long until the
#                                     other host's node produces, and brings the host back; `status`
#                                     shows both instances. Jormungandr only
#
# Idempotent: `start` first stops a demo that is still running, and begins a new restart log and
# leader-event log. The supervisord password is generated once, kept in .demo/supervisor.password
# (mode 0600), never printed; the demo pool's secret is .demo/pool-secret.yaml (mode 0600).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO_DIR="$ROOT/.demo"
CONF="$DEMO_DIR/supervisord.conf"
PIDFILE="$DEMO_DIR/supervisord.pid"
PASSWORD_FILE="$DEMO_DIR/supervisor.password"
SOCKET="$DEMO_DIR/supervisor.sock"
ENV_FILE="$DEMO_DIR/demo.env"
EVENTS_FILE="$DEMO_DIR/leader-events.jsonl"
SECRET_FILE="$DEMO_DIR/pool-secret.yaml"
NK_CONF="$DEMO_DIR/nodekeeper.toml"
NK_PIDFILE="$DEMO_DIR/nodekeeper.pid"
NK_LOG="$DEMO_DIR/nodekeeper.log"
RESTART_LOG="$DEMO_DIR/restarts.csv"
USER_NAME="nodekeeper"
NODES=(node1 node2 node3)
# The simulated chain (--chain; kept in demo.env for watch and status).
CHAIN="jormungandr"
# nodeos: the active producers, ours among them; a block every 0.5 s, 12 per turn.
NODEOS_PRODUCERS="eosnationftw,nkpool,eosphereiobp,teamgreymass"
NODEOS_PRODUCER="nkpool"
# cardano: 1 s slots, one-hour epochs (the schedule file covers the demo), the pool's files here.
CARDANO_SLOT_MS=1000
CARDANO_EPOCH_LENGTH=3600
POOL_DIR="$DEMO_DIR/pool"
GENESIS_FILE="$DEMO_DIR/shelley-genesis.json"
SCHEDULE_FILE="$DEMO_DIR/leadership-schedule.json"
GENESIS_TIME=""

SIM_BIN="$ROOT/target/release/nodekeeper-sim"
CTL_BIN="$ROOT/target/release/nodekeeper"

# Simulated chain parameters, shared by all nodes. A block every 2 s, so that a stuck node (no new
# block for tip_timeout = 20 s) is only ~10 blocks behind when its stale tip is noticed, below the
# lag threshold (12 blocks): each injected fault shows its own rule.
SLOT_DURATION=2
SLOTS_PER_EPOCH=60
BOOTSTRAP_SECS=2
# The pool leads 3 slots per 2-minute epoch (the simulator's default, 5 %).
POOL_SLOTS_PER_EPOCH=3

# How long to wait for supervisord to report every node RUNNING, and for the daemon's first tick.
START_TIMEOUT=20

# `watch` without --for: until Ctrl-C on a terminal, else this many seconds.
WATCH_DEFAULT_NONINTERACTIVE=120

# Filled in by write_conf (and by load_env for the other commands).
SUPERVISOR_PORT=""
API_PORT=""
declare -A NODE_PORT=()

usage() {
    # The header comment: from line 2 to the first line that is not a comment.
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build() {
    step "cargo build --release --workspace --bins"
    need_cmd cargo "install the Rust toolchain, e.g. from https://rustup.rs"
    (cd "$ROOT" && cargo build --release --workspace --bins) || die "cargo build --release --workspace --bins failed"
    [[ -x "$SIM_BIN" ]] || die "$SIM_BIN missing after the build"
    [[ -x "$CTL_BIN" ]] || die "$CTL_BIN missing after the build"
}

# ensure_password: generate the supervisord password once; keep it private.
ensure_password() {
    if [[ ! -s "$PASSWORD_FILE" ]]; then
        (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$PASSWORD_FILE")
        info "generated a supervisord password in $PASSWORD_FILE"
    fi
    chmod 0600 "$PASSWORD_FILE"
}

password() {
    tr -d '\n' <"$PASSWORD_FILE"
}

# write_secret: the demo pool's node secret, as `jormungandr --secret` reads it (fake keys; the
# simulator checks only the shape). Every node boots with it; nodekeeper promotes with it.
write_secret() {
    local node_id
    node_id="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))')"
    (
        umask 077
        cat >"$SECRET_FILE" <<EOF
genesis:
  sig_key: kes25519-12-sk1demo
  vrf_key: vrf_sk1demo
  node_id: $node_id
EOF
    )
    chmod 0600 "$SECRET_FILE"
}

# stop_demo: shut down a running demo supervisord (uses the config it was started with).
stop_demo() {
    local pid
    if pid="$(pid_alive "$PIDFILE")"; then
        info "stopping the demo supervisord (pid $pid)"
        supervisord_stop "$CONF" "$PIDFILE"
        return 0
    fi
    return 1
}

# shquote WORD: quote WORD for supervisord's command= (split with Python's shlex), e.g. a
# checkout path with spaces.
shquote() {
    if [[ "$1" =~ ^[A-Za-z0-9_./:@=+-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# tomlstr WORD: WORD as a TOML basic string, e.g. a checkout path with a quote or a backslash.
tomlstr() {
    local s="${1//\\/\\\\}"
    printf '"%s"' "${s//\"/\\\"}"
}

# sim_command NODE GENESIS_TIME: the simulator's command line for NODE on the demo's chain.
# Jormungandr: every node boots as the pool's leader (--secret, as jorm_master starts them);
# nodeos: every node boots paused (--pause-on-startup, as supervisor-conf generates it); cardano:
# every node boots non-producing with its own credential paths (as supervisor-conf generates it).
sim_command() {
    local node="$1" genesis="$2" sim
    sim="$(shquote "$SIM_BIN")"
    # nodeos and cardano-node run the simulator under the real program's name (a symlink), so that
    # nodekeeper reads each command line as that program's own: --pause-on-startup and
    # --start-as-non-producing-node then tell it the nodes boot without the key, as with the real
    # nodes (a command it does not recognise counts as a wrapper that may pass anything).
    case "$CHAIN" in
        nodeos | cardano)
            local program="nodeos"
            [[ "$CHAIN" == cardano ]] && program="cardano-node"
            mkdir -p "$DEMO_DIR/bin"
            ln -sfn "$SIM_BIN" "$DEMO_DIR/bin/$program"
            sim="$(shquote "$DEMO_DIR/bin/$program")"
            ;;
    esac
    case "$CHAIN" in
        nodeos)
            printf '%s --chain nodeos --name %s --listen 127.0.0.1:%s --genesis-time %s --producers %s --producer %s --pause-on-startup --bootstrap-secs %s --events %s' \
                "$sim" "$node" "${NODE_PORT[$node]}" "$genesis" "$NODEOS_PRODUCERS" "$NODEOS_PRODUCER" \
                "$BOOTSTRAP_SECS" "$(shquote "$EVENTS_FILE")"
            ;;
        cardano)
            local dir="$DEMO_DIR/nodes/$node"
            printf '%s --chain cardano --name %s --listen 127.0.0.1:%s --system-start %s --slot-length-ms %s --epoch-length %s --bootstrap-secs %s --shelley-kes-key %s --shelley-vrf-key %s --shelley-operational-certificate %s --start-as-non-producing-node --events %s' \
                "$sim" "$node" "${NODE_PORT[$node]}" "$genesis" "$CARDANO_SLOT_MS" "$CARDANO_EPOCH_LENGTH" \
                "$BOOTSTRAP_SECS" "$(shquote "$dir/kes.skey")" "$(shquote "$dir/vrf.skey")" \
                "$(shquote "$dir/node.opcert")" "$(shquote "$EVENTS_FILE")"
            ;;
        *)
            printf '%s --name %s --listen 127.0.0.1:%s --block0-time %s --slot-duration %s --slots-per-epoch %s --pool-slots-per-epoch %s --bootstrap-secs %s --secret %s --events %s' \
                "$sim" "$node" "${NODE_PORT[$node]}" "$genesis" "$SLOT_DURATION" "$SLOTS_PER_EPOCH" \
                "$POOL_SLOTS_PER_EPOCH" "$BOOTSTRAP_SECS" "$(shquote "$SECRET_FILE")" "$(shquote "$EVENTS_FILE")"
            ;;
    esac
}

# write_cardano_files GENESIS_TIME: the pool's credentials (fake text envelopes, mode 0600), the
# Shelley genesis, and the pool's leadership schedule of this epoch and the next as the simulator
# computes them; every node's directory, where nodekeeper places the files of the one that forges.
write_cardano_files() {
    local genesis="$1" epoch node name
    (
        umask 077
        mkdir -p "$POOL_DIR"
        for name in kes.skey vrf.skey node.opcert; do
            printf '{"type": "demo %s", "description": "a fake key of the demo", "cborHex": "%s"}\n' \
                "$name" "$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))')" >"$POOL_DIR/$name"
        done
    )
    for node in "${NODES[@]}"; do
        mkdir -p "$DEMO_DIR/nodes/$node"
        rm -f "$DEMO_DIR/nodes/$node/kes.skey" "$DEMO_DIR/nodes/$node/vrf.skey" "$DEMO_DIR/nodes/$node/node.opcert"
    done
    local -a chain=(--chain cardano --system-start "$genesis" --slot-length-ms "$CARDANO_SLOT_MS" --epoch-length "$CARDANO_EPOCH_LENGTH")
    "$SIM_BIN" "${chain[@]}" --write-genesis "$GENESIS_FILE" || die "cannot write $GENESIS_FILE"
    epoch=$((($(date +%s) - genesis) * 1000 / CARDANO_SLOT_MS / CARDANO_EPOCH_LENGTH))
    "$SIM_BIN" "${chain[@]}" --write-schedule "$DEMO_DIR/schedule-now.json" --epoch "$epoch" \
        && "$SIM_BIN" "${chain[@]}" --write-schedule "$DEMO_DIR/schedule-next.json" --epoch "$((epoch + 1))" \
        || die "cannot write the leadership schedule"
    "$VENV/bin/python" -c 'import json, sys; print(json.dumps([s for p in sys.argv[1:] for s in json.load(open(p))], indent=1))' \
        "$DEMO_DIR/schedule-now.json" "$DEMO_DIR/schedule-next.json" >"$SCHEDULE_FILE" \
        || die "cannot write $SCHEDULE_FILE"
    rm -f "$DEMO_DIR/schedule-now.json" "$DEMO_DIR/schedule-next.json"
}

# write_conf: supervisord.conf with fresh ports and the three simulated nodes of the demo's chain.
write_conf() {
    local block0_time node port pw
    pw="$(password)"
    SUPERVISOR_PORT="$(free_port)"
    # All nodes share one genesis so that they agree on the slot clock.
    block0_time="$(date +%s)"
    GENESIS_TIME="$block0_time"
    for node in "${NODES[@]}"; do
        # Distinct ports even if the OS hands the same free port out twice.
        while :; do
            port="$(free_port)"
            [[ "$port" != "$SUPERVISOR_PORT" && " ${NODE_PORT[*]} " != *" $port "* ]] && break
        done
        NODE_PORT[$node]="$port"
    done
    while :; do
        API_PORT="$(free_port)"
        [[ "$API_PORT" != "$SUPERVISOR_PORT" && " ${NODE_PORT[*]} " != *" $API_PORT "* ]] && break
    done

    (
        umask 077
        cat >"$CONF" <<EOF
; Generated by scripts/demo.sh; rewritten on every start. Holds the password: keep it private.
[supervisord]
nodaemon=false
logfile=$DEMO_DIR/supervisord.log
logfile_maxbytes=5MB
logfile_backups=2
pidfile=$PIDFILE
childlogdir=$DEMO_DIR
directory=$ROOT
identifier=nodekeeper-demo

[inet_http_server]
port=127.0.0.1:$SUPERVISOR_PORT
username=$USER_NAME
password=$pw

[unix_http_server]
file=$SOCKET
chmod=0700
username=$USER_NAME
password=$pw

[supervisorctl]
serverurl=unix://$SOCKET
username=$USER_NAME
password=$pw

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
EOF
        for node in "${NODES[@]}"; do
            cat >>"$CONF" <<EOF

[program:$node]
command=$(sim_command "$node" "$block0_time")
autostart=true
autorestart=false
startsecs=1
stopsignal=TERM
stopwaitsecs=10
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=$DEMO_DIR/$node.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=3
EOF
        done
    )
    chmod 0600 "$CONF"

    # Non-secret facts for other tools (and later scripts): source-able shell assignments.
    {
        echo "# Generated by scripts/demo.sh. The password is in SUPERVISOR_PASSWORD_FILE, not here."
        echo "SUPERVISOR_URL=http://127.0.0.1:$SUPERVISOR_PORT/RPC2"
        echo "SUPERVISOR_SOCKET_URL=unix://$SOCKET"
        echo "SUPERVISOR_USER=$USER_NAME"
        echo "SUPERVISOR_PASSWORD_FILE=$PASSWORD_FILE"
        echo "NODEKEEPER_CONFIG=$NK_CONF"
        echo "NODEKEEPER_API=http://127.0.0.1:$API_PORT"
        echo "NODEKEEPER_RESTART_LOG=$RESTART_LOG"
        echo "NODES=\"${NODES[*]}\""
        echo "DEMO_CHAIN=$CHAIN"
        for node in "${NODES[@]}"; do
            echo "${node^^}_REST=http://127.0.0.1:${NODE_PORT[$node]}/api/v0"
        done
    } >"$ENV_FILE"
}

# write_nk_conf: nodekeeper's config for the three nodes (ports from write_conf).
write_nk_conf() {
    local node
    case "$CHAIN" in
        nodeos | cardano) write_nk_conf_other ;;
        *) write_nk_conf_jormungandr ;;
    esac
    for node in "${NODES[@]}"; do
        mkdir -p "$DEMO_DIR/nodes/$node"
    done
}

# write_nk_conf_other: nodekeeper's config for three nodeos or cardano nodes.
write_nk_conf_other() {
    local node TIP_TIMEOUT="20s"
    [[ "$CHAIN" == cardano ]] && TIP_TIMEOUT="90s"
    {
        cat <<EOF
# Generated by scripts/demo.sh --chain $CHAIN on every start: \`nodekeeper run\` for the three demo
# nodes. Every key: configs/$CHAIN.toml and configs/nodekeeper.toml. Paths are relative to this file.

[supervisor]
url = "http://127.0.0.1:$SUPERVISOR_PORT/RPC2"
user = "$USER_NAME"
password_file = "supervisor.password"
wait_timeout = "30s"

[node_defaults]
chain = "$CHAIN"
node_dir = "nodes"
startsecs = 1
stopwaitsecs = 10

[thresholds]
tick_interval = "1s"
tip_timeout = "$TIP_TIMEOUT"   # nodeos: a block every 0.5 s; cardano: one every ~20 s
bootstrap_timeout = "30s"
boot_grace = "10s"
max_restarts = 8
restart_window = "3m"

[restart_log]
path = "restarts.csv"

[api]
listen = "127.0.0.1:$API_PORT"
EOF
        if [[ "$CHAIN" == nodeos ]]; then
            cat <<EOF

[leadership]
enabled = true
producer = "$NODEOS_PRODUCER"
slot_window = 12               # blocks of 0.5 s: no hand-over within 6 s of our turn (a round is 48 blocks here)
state_file = "leader-state.json"
EOF
        else
            cat <<EOF

[leadership]
enabled = true
credentials_dir = "pool"
schedule_file = "leadership-schedule.json"
genesis_file = "shelley-genesis.json"
slot_window = 5                # slots of 1 s around each of the pool's slots
state_file = "leader-state.json"
EOF
        fi
        for node in "${NODES[@]}"; do
            if [[ "$CHAIN" == nodeos ]]; then
                cat <<EOF

[[nodes]]
name = "$node"
rest_url = "http://127.0.0.1:${NODE_PORT[$node]}"
EOF
            else
                cat <<EOF

[[nodes]]
name = "$node"
metrics_url = "http://127.0.0.1:${NODE_PORT[$node]}/metrics"
credentials = { kes = "nodes/$node/kes.skey", vrf = "nodes/$node/vrf.skey", opcert = "nodes/$node/node.opcert" }
EOF
            fi
        done
    } >"$NK_CONF"
}

# write_nk_conf_jormungandr: nodekeeper's config for three Jormungandr nodes.
write_nk_conf_jormungandr() {
    local node
    {
        cat <<EOF
# Generated by scripts/demo.sh on every start: \`nodekeeper run\` for the three demo nodes, with
# thresholds short enough that each injected fault is handled within a minute. Every key, with its
# default and a comment: configs/nodekeeper.toml. Paths are relative to this file.

[supervisor]
url = "http://127.0.0.1:$SUPERVISOR_PORT/RPC2"
user = "$USER_NAME"
password_file = "supervisor.password"
wait_timeout = "30s"           # start/stop calls: above the nodes' startsecs and stopwaitsecs

[node_defaults]
template = "../configs/jormungandr-template.json"
node_dir = "nodes"             # generated node configs: nodes/NODE/NODE.json (the simulator ignores them)
args = ["--secret", $(tomlstr "$SECRET_FILE")]   # as in .demo/supervisord.conf: nodes boot as leaders
startsecs = 1                  # as in .demo/supervisord.conf
stopwaitsecs = 10

[thresholds]
tick_interval = "1s"
probe_timeout = "2s"
api_failures = 3               # failed REST calls in a row: hung
tip_timeout = "20s"            # default 90s
tip_diff_threshold = 12        # blocks (one per 2 s here); default 7
bootstrap_timeout = "30s"      # default 650s
boot_grace = "10s"             # default 60s
max_restarts = 8               # per node and window, then the node is held
restart_window = "3m"          # default 30m: the demo restarts each node about once a minute

[restart_log]
path = "restarts.csv"

[leadership]
enabled = true
secret_file = "pool-secret.yaml"
slot_window = 4                # slots of 2 s; default 15 (would cover most of a 2-minute epoch)
schedule_refresh_min_gap = "20s"   # default 10m: the pool leads 3 slots per 2-minute epoch
state_file = "leader-state.json"

[api]
listen = "127.0.0.1:$API_PORT"
EOF
        for node in "${NODES[@]}"; do
            cat <<EOF

[[nodes]]
name = "$node"
[nodes.overrides]
rest = { listen = "127.0.0.1:${NODE_PORT[$node]}" }
EOF
        done
    } >"$NK_CONF"
}

# load_env: read the ports of the running demo back from demo.env.
load_env() {
    [[ -r "$ENV_FILE" ]] || die "no $ENV_FILE: run scripts/demo.sh first"
    local url node var
    url="$(sed -n 's/^SUPERVISOR_URL=//p' "$ENV_FILE")"
    SUPERVISOR_PORT="${url#http://127.0.0.1:}"
    SUPERVISOR_PORT="${SUPERVISOR_PORT%%/*}"
    url="$(sed -n 's/^NODEKEEPER_API=//p' "$ENV_FILE")"
    API_PORT="${url#http://127.0.0.1:}"
    CHAIN="$(sed -n 's/^DEMO_CHAIN=//p' "$ENV_FILE")"
    CHAIN="${CHAIN:-jormungandr}"
    for node in "${NODES[@]}"; do
        var="${node^^}_REST"
        url="$(sed -n "s|^$var=||p" "$ENV_FILE")"
        url="${url#http://127.0.0.1:}"
        NODE_PORT[$node]="${url%%/*}"
    done
}

start_supervisord() {
    step "starting supervisord (127.0.0.1:$SUPERVISOR_PORT and $SOCKET)"
    rm -f "$SOCKET"
    # supervisord daemonizes (nodaemon=false) once it has bound its sockets; a bad config or a
    # taken port makes this command fail.
    "$NODEKEEPER_SUPERVISORD" -c "$CONF" || die "supervisord failed to start; see $DEMO_DIR/supervisord.log"
    local pid
    # Wait for the daemonized process to write its pidfile.
    local deadline=$((SECONDS + 10))
    until pid="$(pid_alive "$PIDFILE")"; do
        ((SECONDS < deadline)) || die "supervisord wrote no pidfile; see $DEMO_DIR/supervisord.log"
        sleep 0.1
    done
    info "supervisord running, pid $pid"
}

wait_nodes_running() {
    step "waiting for ${NODES[*]} to be RUNNING (up to $START_TIMEOUT s)"
    "$VENV/bin/python" "$ROOT/scripts/supervisor_rpc.py" wait-running --url "unix://$SOCKET" \
        --user "$USER_NAME" --password-file "$PASSWORD_FILE" --timeout "$START_TIMEOUT" "${NODES[@]}" \
        || die "the demo nodes did not all start; see $DEMO_DIR/<node>.log and $DEMO_DIR/supervisord.log"
}

# daemon_alive: print the pid of the demo's `nodekeeper run` and succeed when it is running.
daemon_alive() {
    pid_alive "$NK_PIDFILE" "nodekeeper"
}

# stop_daemon: stop `nodekeeper run` (SIGTERM: it finishes the actions in flight and leaves the
# nodes running). Fails when it was not running.
stop_daemon() {
    local pid
    if ! pid="$(daemon_alive)"; then
        rm -f "$NK_PIDFILE"
        return 1
    fi
    info "stopping nodekeeper run (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" 40; then
        info "nodekeeper run (pid $pid) did not exit in 40 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 5 || die "cannot stop nodekeeper run (pid $pid)"
    fi
    rm -f "$NK_PIDFILE"
}

# api_ready: succeed when the daemon's API answers with a snapshot of every node.
api_ready() {
    "$VENV/bin/python" - "http://127.0.0.1:$API_PORT/v1/status" "${#NODES[@]}" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if len(json.load(r)["nodes"]) == int(sys.argv[2]) else 1)
PY
}

start_daemon() {
    step "starting nodekeeper run (API on 127.0.0.1:$API_PORT, log .demo/nodekeeper.log)"
    "$CTL_BIN" -c "$NK_CONF" config check >&2 \
        || die "the generated $NK_CONF does not pass config check (scripts/demo.sh stop stops the nodes)"
    # In its own session (setsid), so that a Ctrl-C in `watch` does not reach it.
    local -a launcher=()
    if command -v setsid >/dev/null 2>&1; then
        launcher=(setsid)
    fi
    printf '$ %s\n' "target/release/nodekeeper -c .demo/nodekeeper.toml run --log info >>.demo/nodekeeper.log 2>&1 &" >&2
    "${launcher[@]}" "$CTL_BIN" -c "$NK_CONF" run --log info </dev/null >>"$NK_LOG" 2>&1 &
    echo "$!" >"$NK_PIDFILE"
    local deadline=$((SECONDS + START_TIMEOUT)) pid
    pid="$(tr -dc '0-9' <"$NK_PIDFILE")"
    until api_ready; do
        kill -0 "$pid" 2>/dev/null \
            || die "nodekeeper run exited; see $NK_LOG: $(tail -n 3 "$NK_LOG" | tr '\n' ' ')"
        ((SECONDS < deadline)) || die "nodekeeper run did not answer on 127.0.0.1:$API_PORT in $START_TIMEOUT s; see $NK_LOG"
        sleep 0.2
    done
    info "nodekeeper run is up (pid $pid), one tick per second"
    dashboard_screenshot
}

# dashboard_screenshot: print the dashboard's URL and, with chromium (installed when missing and
# root), write .demo/dashboard.png of the page once the live feed has filled it.
dashboard_screenshot() {
    local url="http://127.0.0.1:$API_PORT/" shot="$DEMO_DIR/dashboard.png"
    info "dashboard: $url"
    if ! (ensure_apt chromium chromium) >/dev/null 2>&1; then
        info "no chromium: no screenshot of the dashboard"
        return 0
    fi
    rm -f "$shot"
    # A fresh profile each time. `?snapshot`: one status instead of the never-ending live feed, so
    # the page finishes loading and the virtual time budget can run out.
    local profile
    profile="$(mktemp -d)"
    timeout 60 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --no-first-run --user-data-dir="$profile" --window-size=1200,1400 \
        --virtual-time-budget=5000 --screenshot="$shot" "${url}?snapshot" >/dev/null 2>&1 || true
    rm -rf "$profile"
    if [[ -s "$shot" ]]; then
        info "dashboard screenshot: .demo/dashboard.png"
    else
        info "chromium wrote no screenshot of the dashboard"
    fi
}

# ctl ARGS...: run nodekeeper ctl with the demo's password, showing the command line.
ctl() {
    printf '$ %s\n' "target/release/nodekeeper ctl $*" >&2
    NODEKEEPER_SUPERVISOR_PASSWORD="$(password)" "$CTL_BIN" ctl "$@"
}

show_status() {
    local rc=0
    step "nodekeeper ctl status (over TCP)"
    ctl --supervisor "http://127.0.0.1:$SUPERVISOR_PORT/RPC2" --user "$USER_NAME" status || rc=$?
    step "nodekeeper ctl status (over the unix socket)"
    ctl --supervisor "unix://$SOCKET" --user "$USER_NAME" status || rc=$?
    ((rc == 0)) || info "nodekeeper ctl exited with status $rc"
    return "$rc"
}

# nk_status: `nodekeeper status` (the running daemon's view), showing the command line.
nk_status() {
    printf '$ %s\n' "target/release/nodekeeper -c .demo/nodekeeper.toml status" >&2
    "$CTL_BIN" -c "$NK_CONF" status
}

show_restart_log() {
    local rows=0
    if [[ -s "$RESTART_LOG" ]]; then
        rows=$(($(wc -l <"$RESTART_LOG") - 1))
    fi
    printf '$ tail -n 6 .demo/restarts.csv   (%s rows)\n' "$rows" >&2
    if ((rows > 0)); then
        tail -n 6 "$RESTART_LOG"
    else
        echo "(no restart yet)"
    fi
}

# chain_story: what the demo shows about one producer at a time, on its chain.
chain_story() {
    case "$CHAIN" in
        nodeos)
            echo "Every node booted paused (--pause-on-startup): nodekeeper resumes one for producer $NODEOS_PRODUCER,"
            echo "and hands over (pause, verify paused, resume) only after our turn and the next."
            ;;
        cardano)
            echo "Every node booted non-producing: nodekeeper places the pool's files (.demo/pool) at one node's"
            echo "paths and sends it SIGHUP; to hand over it removes them, SIGHUPs and verifies first."
            ;;
        *)
            echo "Every node booted with the pool's secret: nodekeeper demotes all but one, keeps that one leading and"
            echo "hands the key over (demote, verify, promote) when another node is better, away from the pool's slots."
            ;;
    esac
}

print_next_steps() {
    local node
    step "the demo is running"
    cat <<EOF
Watch nodekeeper at work (a fault injected every ~20 s):  scripts/demo.sh watch

$(chain_story)

Look further (from $ROOT):
  target/release/nodekeeper -c .demo/nodekeeper.toml status   # the daemon's view; * marks the leader,
                                                               # "leader: ...; next slot ..." its slots
  tail -f .demo/nodekeeper.log                                 # what it decides and does
  cat .demo/restarts.csv                                       # one row per stop and per start
  cat .demo/leader-events.jsonl                                # one line per block a node led
  .venv/bin/supervisorctl -c .demo/supervisord.conf status
  target/release/nodekeeper ctl --supervisor unix://$SOCKET --user $USER_NAME \\
    --password-file .demo/supervisor.password status

Simulated nodes ($CHAIN):
EOF
    for node in "${NODES[@]}"; do
        case "$CHAIN" in
            nodeos) printf '  %-6s curl http://127.0.0.1:%s/v1/chain/get_info; curl http://127.0.0.1:%s/v1/producer/paused\n' \
                "$node" "${NODE_PORT[$node]}" "${NODE_PORT[$node]}" ;;
            cardano) printf '  %-6s curl http://127.0.0.1:%s/metrics\n' "$node" "${NODE_PORT[$node]}" ;;
            *) printf '  %-6s curl http://127.0.0.1:%s/api/v0/node/stats\n' "$node" "${NODE_PORT[$node]}" ;;
        esac
    done
    cat <<EOF
Inject a fault yourself (crash, stuck, hang, slow, lag, bootstrap, fork, none):
  curl -X POST http://127.0.0.1:${NODE_PORT[node1]}/sim/fault -d '{"fault":"stuck"}'

Files: .demo/supervisord.conf, .demo/supervisor.password and .demo/pool-secret.yaml (mode 0600),
       .demo/nodekeeper.toml, .demo/nodekeeper.log, .demo/restarts.csv, .demo/leader-state.json,
       .demo/nodes/, .demo/<node>.log, .demo/supervisord.log, .demo/leader-events.jsonl,
       .demo/demo.env
Stop:  scripts/demo.sh stop
EOF
}

cmd_start() {
    # shellcheck disable=SC2119 # no extra pip packages needed here
    ensure_venv
    build
    mkdir -p "$DEMO_DIR"
    chmod 0700 "$DEMO_DIR"
    # The daemon first, so that it does not restart nodes that are being shut down.
    stop_daemon || true
    stop_demo || true
    stop_hosts || true
    ensure_password
    write_secret
    write_conf
    if [[ "$CHAIN" == cardano ]]; then
        write_cardano_files "$GENESIS_TIME"
    fi
    write_nk_conf
    # A new demo (a new chain), a new restart log and leader-event log, and no holds, leader or
    # slots left over from the last one.
    rm -f "$RESTART_LOG" "$EVENTS_FILE" "$DEMO_DIR/nodekeeper-state.json" "$DEMO_DIR/leader-state.json" \
        "$DEMO_DIR/alert-outbox.json"
    : >"$NK_LOG"
    start_supervisord
    wait_nodes_running
    start_daemon
    show_status || true
    step "nodekeeper status"
    nk_status || true
    print_next_steps
}

# require_running: fail with one line unless the demo supervisord is up; load its ports.
require_running() {
    pid_alive "$PIDFILE" >/dev/null || die "the demo is not running (start it with scripts/demo.sh start)"
    [[ -x "$CTL_BIN" ]] || die "$CTL_BIN missing: run scripts/demo.sh start"
    load_env
}

cmd_status() {
    require_running
    step "supervisorctl status"
    "$VENV/bin/supervisorctl" -c "$CONF" status || true
    show_status || true
    step "nodekeeper status"
    local pid
    if pid="$(daemon_alive)"; then
        info "nodekeeper run is running (pid $pid, log .demo/nodekeeper.log)"
    else
        info "nodekeeper run is NOT running (see .demo/nodekeeper.log); one observation made now:"
    fi
    nk_status || true
    step "restart log"
    show_restart_log
}

# cmd_watch [--for SECONDS]: the fault loop (scripts/demo_watch.py) against the running demo.
cmd_watch() {
    local duration=""
    while (($#)); do
        case "$1" in
            --for)
                [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--for wants a number of seconds"
                duration="$2"
                shift 2
                ;;
            --for=*)
                duration="${1#--for=}"
                [[ "$duration" =~ ^[0-9]+$ ]] || die "--for wants a number of seconds"
                shift
                ;;
            *) die "watch: unknown option '$1' (expected --for SECONDS)" ;;
        esac
    done
    if [[ -z "$duration" ]]; then
        if [[ -t 0 && -t 1 ]]; then
            duration=0 # until Ctrl-C
        else
            duration="$WATCH_DEFAULT_NONINTERACTIVE"
        fi
    fi
    require_running
    daemon_alive >/dev/null || die "nodekeeper run is not running (see $NK_LOG); restart the demo: scripts/demo.sh start"
    local -a nodes=()
    local node
    for node in "${NODES[@]}"; do
        nodes+=(--node "$node=http://127.0.0.1:${NODE_PORT[$node]}")
    done
    step "watching nodekeeper handle injected faults"
    (cd "$ROOT" && "$VENV/bin/python" "$ROOT/scripts/demo_watch.py" --nodekeeper "$CTL_BIN" \
        --config "$NK_CONF" --api "http://127.0.0.1:$API_PORT" --restart-log "$RESTART_LOG" \
        --log "$NK_LOG" --for "$duration" "${nodes[@]}")
}

cmd_stop() {
    local pid stopped=""
    if stop_daemon; then
        stopped=1
    fi
    if [[ -x "$VENV/bin/supervisorctl" ]] && stop_hosts; then
        stopped=1
    fi
    if [[ -x "$VENV/bin/supervisorctl" ]] && stop_demo; then
        stopped=1
    elif pid="$(pid_alive "$PIDFILE")"; then
        # No venv (removed?) but a live supervisord: fall back to signals.
        kill -TERM "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 30 || die "supervisord (pid $pid) did not exit"
        stopped=1
    fi
    if [[ -n "$stopped" ]]; then
        info "demo stopped"
    else
        info "the demo is not running"
    fi
}

# ---------------------------------------------------------------------------------------------
# --hosts 2: two simulated hosts sharing one etcd (Jormungandr only)

HOSTS=""
HOSTS_DIR="$DEMO_DIR/hosts"
ETCD_DIR="$DEMO_DIR/etcd"
ETCD_PIDFILE="$ETCD_DIR/etcd.pid"
HOST_NAMES=(a b)
declare -A HOST_NODES=([a]="node1 node2" [b]="node3 node4")
declare -A HOST_SUP_PORT=() HOST_API_PORT=()
ETCD_PORT=""
# How often `watch` injects a host loss (seconds).
HOST_LOSS_EVERY=60

# taken_ports: every port handed out so far (to keep them distinct).
taken_ports() {
    echo " ${NODE_PORT[*]} ${HOST_SUP_PORT[*]} ${HOST_API_PORT[*]} $ETCD_PORT ${ETCD_PEER_PORT:-} "
}

# new_port: a free port not handed out yet.
new_port() {
    local port
    while :; do
        port="$(free_port)"
        [[ "$(taken_ports)" != *" $port "* ]] && break
    done
    printf '%s\n' "$port"
}

# start_etcd: one etcd member on loopback, in .demo/etcd, in its own session.
start_etcd() {
    mkdir -p "$ETCD_DIR"
    rm -rf "$ETCD_DIR/data"
    ETCD_PORT="$(new_port)"
    ETCD_PEER_PORT="$(new_port)"
    step "starting etcd (http://127.0.0.1:$ETCD_PORT, one member, log .demo/etcd/etcd.log)"
    local client="http://127.0.0.1:$ETCD_PORT" peer="http://127.0.0.1:$ETCD_PEER_PORT"
    local -a launcher=()
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    "${launcher[@]}" "$NODEKEEPER_ETCD" --name demo --data-dir "$ETCD_DIR/data" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "demo=$peer" --initial-cluster-state new --log-level warn \
        </dev/null >"$ETCD_DIR/etcd.log" 2>&1 &
    echo "$!" >"$ETCD_PIDFILE"
    local deadline=$((SECONDS + START_TIMEOUT))
    until curl_health "$client/health"; do
        pid_alive "$ETCD_PIDFILE" etcd >/dev/null || die "etcd exited; see $ETCD_DIR/etcd.log"
        ((SECONDS < deadline)) || die "etcd not healthy after $START_TIMEOUT s; see $ETCD_DIR/etcd.log"
        sleep 0.2
    done
    info "etcd is up (pid $(tr -dc '0-9' <"$ETCD_PIDFILE"))"
}

# curl_health URL: succeed when etcd's /health says healthy.
curl_health() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if json.load(r).get("health") == "true" else 1)
PY
}

stop_etcd() {
    local pid
    pid="$(pid_alive "$ETCD_PIDFILE" etcd)" || return 1
    info "stopping etcd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_exit "$pid" 15 || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$ETCD_PIDFILE"
}

# write_host HOST BLOCK0: .demo/hosts/HOST: supervisord.conf (its nodes, simulated, booting
# without the key; the listener, the fence and `nodekeeper run` from `nodekeeper supervisor-conf`
# in conf.d) and nodekeeper.toml, which differs between hosts only in cluster.name, the
# supervisord, the API port (restart_log and the other paths are relative to the file).
write_host() {
    local host="$1" block0="$2" dir="$HOSTS_DIR/$1" node pw
    pw="$(password)"
    mkdir -p "$dir/conf.d" "$dir/nodes"
    rm -f "$dir"/conf.d/*.conf "$dir/restarts.csv" "$dir/leader-state.json" "$dir/nodekeeper-state.json" \
        "$dir/cluster-lease" "$dir/alert-outbox.json"
    HOST_SUP_PORT[$host]="$(new_port)"
    HOST_API_PORT[$host]="$(new_port)"
    {
        cat <<TOML
# Generated by scripts/demo.sh --hosts 2 on every start: host $host's \`nodekeeper run\`. Every host
# reads the same pool; this file differs from the other host's only in cluster.name, [supervisor]
# and api.listen. Every key: configs/nodekeeper.toml. Paths are relative to this file.

[cluster]
name = "$host"
etcd = ["http://127.0.0.1:$ETCD_PORT"]
# lease_ttl = "10s" (the default): another host takes over about 10 s after this one is lost

[supervisor]
url = "http://127.0.0.1:${HOST_SUP_PORT[$host]}/RPC2"
user = "$USER_NAME"
password_file = "../../supervisor.password"
wait_timeout = "30s"

[node_defaults]
template = "../../../configs/jormungandr-template.json"
node_dir = "nodes"
startsecs = 1
stopwaitsecs = 10

[thresholds]
tick_interval = "1s"
probe_timeout = "2s"
tip_timeout = "20s"
tip_diff_threshold = 12
bootstrap_timeout = "30s"
boot_grace = "10s"
max_restarts = 8
restart_window = "3m"

[restart_log]
path = "restarts.csv"

[leadership]
enabled = true
secret_file = "../../pool-secret.yaml"
slot_window = 4
schedule_refresh_min_gap = "20s"
state_file = "leader-state.json"

[api]
listen = "127.0.0.1:${HOST_API_PORT[$host]}"
TOML
        local h
        for h in "${HOST_NAMES[@]}"; do
            for node in ${HOST_NODES[$h]}; do
                mkdir -p "$dir/nodes/$node"
                cat <<TOML

[[nodes]]
name = "$node"
instance = "$h"
[nodes.overrides]
rest = { listen = "127.0.0.1:${NODE_PORT[$node]}" }
TOML
            done
        done
    } >"$dir/nodekeeper.toml"
    (
        umask 077
        cat >"$dir/supervisord.conf" <<CONF
; Generated by scripts/demo.sh --hosts 2; rewritten on every start. Holds the password: keep it private.
; Simulated host $host: its nodes, its event listener, its fence and its nodekeeper run.
[supervisord]
nodaemon=false
logfile=$dir/supervisord.log
logfile_maxbytes=5MB
logfile_backups=2
pidfile=$dir/supervisord.pid
childlogdir=$dir
directory=$dir
identifier=nodekeeper-demo-$host

[inet_http_server]
port=127.0.0.1:${HOST_SUP_PORT[$host]}
username=$USER_NAME
password=$pw

[unix_http_server]
file=$dir/supervisor.sock
chmod=0700
username=$USER_NAME
password=$pw

[supervisorctl]
serverurl=unix://$dir/supervisor.sock
username=$USER_NAME
password=$pw

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[include]
files=$dir/conf.d/*.conf
CONF
        for node in ${HOST_NODES[$host]}; do
            cat >>"$dir/supervisord.conf" <<CONF

[program:$node]
command=$(shquote "$DEMO_DIR/bin/jormungandr") --name $node --listen 127.0.0.1:${NODE_PORT[$node]} --block0-time $block0 --slot-duration $SLOT_DURATION --slots-per-epoch $SLOTS_PER_EPOCH --pool-slots-per-epoch $POOL_SLOTS_PER_EPOCH --bootstrap-secs $BOOTSTRAP_SECS --events $(shquote "$EVENTS_FILE")
autostart=true
autorestart=false
startsecs=1
stopsignal=TERM
stopwaitsecs=10
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=$dir/$node.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=3
CONF
        done
    )
    chmod 0600 "$dir/supervisord.conf"
    "$CTL_BIN" -c "$dir/nodekeeper.toml" config check >&2 || die "the generated $dir/nodekeeper.toml does not pass config check"
    # The listener, the fence and nodekeeper run itself, as an operator installs them; the nodes'
    # own sections are left out (the demo runs simulators, above).
    "$CTL_BIN" -c "$dir/nodekeeper.toml" supervisor-conf --dir "$dir/conf.d" >/dev/null \
        || die "nodekeeper supervisor-conf failed for host $host"
    for node in ${HOST_NODES[$host]}; do
        rm -f "$dir/conf.d/$node.conf"
    done
}

# host_supervisord HOST: start host HOST's supervisord (daemonizes into its own session).
host_supervisord() {
    local host="$1" dir="$HOSTS_DIR/$1"
    rm -f "$dir/supervisor.sock"
    "$NODEKEEPER_SUPERVISORD" -c "$dir/supervisord.conf" || die "host $host: supervisord failed to start; see $dir/supervisord.log"
    local deadline=$((SECONDS + 10))
    until pid_alive "$dir/supervisord.pid" >/dev/null; do
        ((SECONDS < deadline)) || die "host $host: supervisord wrote no pidfile; see $dir/supervisord.log"
        sleep 0.1
    done
}

# host_api_ready HOST: the host's daemon answers with a snapshot of the whole pool.
host_api_ready() {
    "$VENV/bin/python" - "http://127.0.0.1:${HOST_API_PORT[$1]}/v1/status" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if json.load(r)["nodes"] else 1)
PY
}

write_hosts_env() {
    local host node
    {
        echo "# Generated by scripts/demo.sh --hosts 2. The password is in SUPERVISOR_PASSWORD_FILE, not here."
        echo "DEMO_HOSTS=2"
        echo "DEMO_CHAIN=$CHAIN"
        echo "ETCD_ENDPOINT=http://127.0.0.1:$ETCD_PORT"
        echo "SUPERVISOR_USER=$USER_NAME"
        echo "SUPERVISOR_PASSWORD_FILE=$PASSWORD_FILE"
        for host in "${HOST_NAMES[@]}"; do
            echo "HOST_${host^^}_DIR=$HOSTS_DIR/$host"
            echo "HOST_${host^^}_SUPERVISOR_URL=http://127.0.0.1:${HOST_SUP_PORT[$host]}/RPC2"
            echo "HOST_${host^^}_NODEKEEPER_CONFIG=$HOSTS_DIR/$host/nodekeeper.toml"
            echo "HOST_${host^^}_NODEKEEPER_API=http://127.0.0.1:${HOST_API_PORT[$host]}"
            echo "HOST_${host^^}_NODES=\"${HOST_NODES[$host]}\""
            for node in ${HOST_NODES[$host]}; do
                echo "${node^^}_REST=http://127.0.0.1:${NODE_PORT[$node]}/api/v0"
            done
        done
    } >"$ENV_FILE"
}

# hosts_running: succeed when demo.env describes a --hosts demo.
hosts_demo() {
    [[ -r "$ENV_FILE" ]] && grep -q '^DEMO_HOSTS=' "$ENV_FILE"
}

load_hosts_env() {
    local host node url
    ETCD_PORT="$(sed -n 's|^ETCD_ENDPOINT=http://127.0.0.1:||p' "$ENV_FILE")"
    for host in "${HOST_NAMES[@]}"; do
        url="$(sed -n "s|^HOST_${host^^}_NODEKEEPER_API=http://127.0.0.1:||p" "$ENV_FILE")"
        HOST_API_PORT[$host]="$url"
        url="$(sed -n "s|^HOST_${host^^}_SUPERVISOR_URL=http://127.0.0.1:||p" "$ENV_FILE")"
        HOST_SUP_PORT[$host]="${url%%/*}"
        for node in ${HOST_NODES[$host]}; do
            url="$(sed -n "s|^${node^^}_REST=http://127.0.0.1:||p" "$ENV_FILE")"
            NODE_PORT[$node]="${url%%/*}"
        done
    done
}

# stop_hosts: stop a --hosts demo (each host's nodekeeper first, then its supervisord; then
# etcd). Fails when nothing was running.
stop_hosts() {
    local host dir pid stopped=1
    for host in "${HOST_NAMES[@]}"; do
        dir="$HOSTS_DIR/$host"
        if pid="$(pid_alive "$dir/supervisord.pid")"; then
            info "stopping host $host (supervisord pid $pid)"
            "$VENV/bin/supervisorctl" -c "$dir/supervisord.conf" stop nodekeeper >/dev/null 2>&1 || true
            supervisord_stop "$dir/supervisord.conf" "$dir/supervisord.pid"
            stopped=0
        fi
    done
    stop_etcd && stopped=0
    return "$stopped"
}

hosts_start() {
    # shellcheck disable=SC2119 # no extra pip packages needed here
    ensure_venv
    build
    mkdir -p "$DEMO_DIR" "$HOSTS_DIR"
    chmod 0700 "$DEMO_DIR"
    stop_daemon || true
    stop_demo || true
    stop_hosts || true
    ensure_password
    write_secret
    rm -f "$EVENTS_FILE"
    # The simulator under jormungandr's own name, so that nodekeeper reads each command line as
    # jormungandr's: without --secret, the nodes boot without the key.
    mkdir -p "$DEMO_DIR/bin"
    ln -sfn "$SIM_BIN" "$DEMO_DIR/bin/jormungandr"
    start_etcd
    local block0 host node
    block0="$(date +%s)"
    for host in "${HOST_NAMES[@]}"; do
        for node in ${HOST_NODES[$host]}; do
            NODE_PORT[$node]="$(new_port)"
        done
    done
    for host in "${HOST_NAMES[@]}"; do
        write_host "$host" "$block0"
    done
    write_hosts_env
    for host in "${HOST_NAMES[@]}"; do
        step "starting host $host: supervisord on 127.0.0.1:${HOST_SUP_PORT[$host]} with ${HOST_NODES[$host]}, the listener, the fence and nodekeeper run"
        host_supervisord "$host"
    done
    for host in "${HOST_NAMES[@]}"; do
        # shellcheck disable=SC2086 # the host's node names, split on purpose
        "$VENV/bin/python" "$ROOT/scripts/supervisor_rpc.py" wait-running --url "unix://$HOSTS_DIR/$host/supervisor.sock" \
            --user "$USER_NAME" --password-file "$PASSWORD_FILE" --timeout "$START_TIMEOUT" ${HOST_NODES[$host]} nodekeeper nodekeeper-fence \
            || die "host $host: not everything started; see $HOSTS_DIR/$host/*.log"
        local deadline=$((SECONDS + START_TIMEOUT))
        until host_api_ready "$host"; do
            ((SECONDS < deadline)) || die "host $host: nodekeeper run did not answer on 127.0.0.1:${HOST_API_PORT[$host]}; see $HOSTS_DIR/$host/nodekeeper.log"
            sleep 0.2
        done
        info "host $host: nodekeeper run answers on http://127.0.0.1:${HOST_API_PORT[$host]}"
    done
    hosts_status_body
    step "the demo is running (two hosts)"
    cat <<TXT
Watch a host loss every ~$HOST_LOSS_EVERY s:  scripts/demo.sh watch

Two simulated hosts, a (node1, node2) and b (node3, node4), each its own supervisord with its
nodes, the event listener, the host's fence and nodekeeper run; one etcd (.demo/etcd). The
nodes boot without the key; only the instance elected in etcd promotes one of its own nodes.

Look further (from $ROOT):
  target/release/nodekeeper -c .demo/hosts/a/nodekeeper.toml status   # the whole pool, NODE@HOST, cluster: line
  tail -f .demo/hosts/a/nodekeeper.log .demo/hosts/b/nodekeeper.log
  .venv/bin/supervisorctl -c .demo/hosts/a/supervisord.conf status
  .venv/bin/etcdctl --endpoints http://127.0.0.1:$ETCD_PORT get --prefix /nodekeeper --keys-only
Stop:  scripts/demo.sh stop
TXT
}

hosts_status_body() {
    local host
    for host in "${HOST_NAMES[@]}"; do
        step "host $host: supervisorctl status"
        "$VENV/bin/supervisorctl" -c "$HOSTS_DIR/$host/supervisord.conf" status || info "host $host: supervisord is not running"
    done
    for host in "${HOST_NAMES[@]}"; do
        step "host $host: nodekeeper status"
        printf '$ %s\n' "target/release/nodekeeper -c .demo/hosts/$host/nodekeeper.toml status" >&2
        "$CTL_BIN" -c "$HOSTS_DIR/$host/nodekeeper.toml" status || true
    done
}

hosts_status() {
    [[ -x "$CTL_BIN" ]] || die "$CTL_BIN missing: run scripts/demo.sh --hosts 2 start"
    load_hosts_env
    pid_alive "$ETCD_PIDFILE" etcd >/dev/null || info "etcd is NOT running (see .demo/etcd/etcd.log)"
    hosts_status_body
}

# hosts_watch [--for SECONDS]: the host-loss loop (scripts/hosts.py watch).
hosts_watch() {
    local duration=""
    while (($#)); do
        case "$1" in
            --for) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--for wants a number of seconds"; duration="$2"; shift 2 ;;
            --for=*) duration="${1#--for=}"; [[ "$duration" =~ ^[0-9]+$ ]] || die "--for wants a number of seconds"; shift ;;
            *) die "watch: unknown option '$1' (expected --for SECONDS)" ;;
        esac
    done
    if [[ -z "$duration" ]]; then
        if [[ -t 0 && -t 1 ]]; then duration=0; else duration="$WATCH_DEFAULT_NONINTERACTIVE"; fi
    fi
    load_hosts_env
    pid_alive "$ETCD_PIDFILE" etcd >/dev/null || die "etcd is not running; restart the demo: scripts/demo.sh --hosts 2 start"
    local -a args=()
    local host node
    for host in "${HOST_NAMES[@]}"; do
        args+=(--host "$host=$HOSTS_DIR/$host")
        for node in ${HOST_NODES[$host]}; do
            args+=(--node "$node@$host=http://127.0.0.1:${NODE_PORT[$node]}/api/v0")
        done
    done
    step "watching nodekeeper survive host losses"
    (cd "$ROOT" && "$VENV/bin/python" "$ROOT/scripts/hosts.py" watch --nodekeeper "$CTL_BIN" \
        --supervisord "$VENV/bin/supervisord" --every "$HOST_LOSS_EVERY" --for "$duration" "${args[@]}")
}

main() {
    # --chain CHAIN (anywhere): the simulated chain of `start`.
    local -a args=()
    while (($#)); do
        case "$1" in
            --chain)
                [[ $# -ge 2 ]] || die "--chain wants jormungandr, nodeos or cardano"
                CHAIN="$2"
                shift 2
                ;;
            --chain=*)
                CHAIN="${1#--chain=}"
                shift
                ;;
            --hosts)
                [[ $# -ge 2 ]] || die "--hosts wants a number of hosts (2)"
                HOSTS="$2"
                shift 2
                ;;
            --hosts=*)
                HOSTS="${1#--hosts=}"
                shift
                ;;
            *)
                args+=("$1")
                shift
                ;;
        esac
    done
    case "$CHAIN" in
        jormungandr | nodeos | cardano) ;;
        *) die "--chain $CHAIN: expected jormungandr, nodeos or cardano" ;;
    esac
    if [[ -n "$HOSTS" ]]; then
        [[ "$HOSTS" == 2 ]] || die "--hosts $HOSTS: only --hosts 2 is simulated"
        [[ "$CHAIN" == jormungandr ]] \
            || die "--hosts: only the Jormungandr chain simulates several hosts (drop --chain $CHAIN)"
    fi
    set -- "${args[@]+"${args[@]}"}"
    case "${1:-}" in
        "" | --for | --for=*)
            if [[ -n "$HOSTS" ]]; then
                hosts_start
                hosts_watch "$@"
            else
                cmd_start
                cmd_watch "$@"
            fi
            ;;
        start) if [[ -n "$HOSTS" ]]; then hosts_start; else cmd_start; fi ;;
        watch)
            shift
            if hosts_demo; then hosts_watch "$@"; else cmd_watch "$@"; fi
            ;;
        status) if hosts_demo; then hosts_status; else cmd_status; fi ;;
        stop) cmd_stop ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            die "unknown command '$1' (expected start, watch, status or stop)"
            ;;
    esac
}

main "$@"
