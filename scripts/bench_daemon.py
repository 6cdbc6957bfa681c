#!/usr/bin/env python3
"""Benchmark nodekeeper's control loop (`nodekeeper run`) against a real supervisord and real
`nodekeeper-sim` nodes. Normally run through `scripts/bench.sh daemon`, which prepares the venv and
builds target/release/{nodekeeper,nodekeeper-sim}.

Phases (each with its own private supervisord, started and shut down by this script):

  pool (10 simulated nodes node01..node10 and the event listener `nodekeeper listen`, as
        `nodekeeper supervisor-conf` generates it; one daemon at default thresholds, see below)
    rss     daemon VmRSS (max over 1 s samples) and CPU (utime+stime), supervisord's and the
            listener's CPU, over --window s of steady state (idle: no fault)
    hang    --hangs `hang` faults, one node at a time: the node RUNNING again in a new process
            (supervisord's startsecs 1 s included) minus the injection time, and the restart-log
            `stop` row minus it; meanwhile node10 answers every request 1 s late for at least
            --slow-window s and must get no restart-log row
    crash   --crashes `crash` faults round-robin on node01..node03: restart-log `start` row (written
            just before startProcess is called) minus the moment the sim process exited (polled in
            /proc every 1 ms), and minus the fault request; and RUNNING again minus the exit
    neighbour  crashes while node10 answers every request in 1.9 s
  crash-poll  the crash phase on a pool without the listener: the poll alone (--poll-crashes)
  tick     200 simulated nodes in one supervisord: one observation + decision. In-process: the
           time between the log lines `nodekeeper running` and `nodekeeper stopped` of
           `nodekeeper run --once --dry-run` (that is the first tick and nothing else); from
           outside: the wall time of `nodekeeper status --json` (process start, config load of
           200 nodes, one observation) next to `nodekeeper config check` (start + load only)
  supervisord  supervisord with 490 `sleep` programs + 10 sims: its utime+stime over --window s
           with the daemon managing the 10 sims, minus the same window with no daemon
  hostloss two simulated hosts ([cluster], lease_ttl 10 s) sharing a 3-member etcd on loopback,
           each a supervisord with --hostloss-sims sims (booting without the key), the listener, the
           host's fence and `nodekeeper run`: the etcd traffic of both instances over --window s at
           idle; then --hostlosses times the host of the producing node (the elected instance's) is
           lost (SIGKILL of its supervisord's whole session): the time until a node of the other
           host answers as leader (goal: median <= lease_ttl + 2 s), and the time with two
           producers over the whole run, failover and the lost host's return (goal: 0 every run)

Thresholds are nodekeeper's defaults (tick 1 s, probe_timeout 1 s, hang_timeout 2 s, boot_grace
60 s, ended early by the first sync) except `max_restarts`, raised to 1000 so that storm protection
does not hold a node the benchmark crashes many times a minute (it changes no latency). Faults are
injected with a random 0-1 s delay so that they do not lock onto the tick's phase.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ctl  # noqa: E402
import hosts  # noqa: E402
import supervisor_rpc  # noqa: E402
from bench_ctl import free_port, log  # noqa: E402

ROOT = bench_ctl.ROOT
USER = bench_ctl.USER
CLK_TCK = os.sysconf("SC_CLK_TCK")
PHASES = ("rss", "hang", "crash", "crash-poll", "neighbour", "tick", "supervisord", "hostloss")
LISTENER = "nodekeeper-events"  # the [eventlistener:...] name `supervisor-conf` generates

# Goals: (label, unit, limit); a figure is met when <= limit.
GOALS = {
    "crash_p50": ("crash -> start issued, with the listener, p50 (from process exit)", "ms", None),
    "crash_p95": ("crash -> start issued, with the listener, p95 (from process exit)", "ms", 50.0),
    "crash_fault_p95": ("crash -> start issued, with the listener, p95 (from the fault request)", "ms", None),
    "crash_running_p50": ("crash -> RUNNING again (new pid), with the listener, p50", "ms", None),
    "poll_p50": ("crash -> start issued, polling only, p50 (from process exit)", "ms", None),
    "poll_p95": ("crash -> start issued, polling only, p95 (from process exit)", "ms", 1000.0),
    "neighbour_p50": ("crash -> start, another node answering in 1.9 s, p50", "ms", None),
    "neighbour_max": ("crash -> start, another node answering in 1.9 s, max", "ms", None),
    "hang_median": ("hung API -> RUNNING again (new pid, after startsecs 1 s), median", "ms", 4000.0),
    "hang_max": ("hung API -> RUNNING again, max", "ms", None),
    "hang_restart_median": ("hung API -> restart issued, median", "ms", None),
    "slow_rows": ("node answering every request 1 s late: restart-log rows", "rows", 0.0),
    "rss_max": ("daemon RSS, 10 nodes (max of 1 s samples)", "MB", 15.0),
    "cpu": ("daemon CPU, 10 nodes, idle, 1 s tick", "% core", 1.0),
    "sup_cpu_idle": ("supervisord CPU, 10 nodes + listener, daemon idle", "% core", 1.0),
    "listener_cpu": ("listener CPU, idle", "% core", None),
    "tick_inproc_p50": ("one tick, {n} nodes, in-process (run --once --dry-run), p50", "ms", 200.0),
    "tick_inproc_max": ("one tick, {n} nodes, in-process, max", "ms", None),
    "tick_cpu_p50": ("CPU of the whole `run --once --dry-run` process, {n} nodes, p50", "ms", None),
    "status_p50": ("`nodekeeper status --json`, {n} nodes, wall, p50", "ms", None),
    "check_p50": ("`nodekeeper config check`, {n} nodes, wall, p50 (fixed cost)", "ms", None),
    "sup_cpu": ("supervisord CPU for the daemon, 10 of 500 programs", "% core", 2.0),
    "sup_cpu_base": ("supervisord CPU baseline (no daemon)", "% core", None),
    "hostloss_median": ("host loss -> other host's node leader (slot-ready), median", "s", 12.0),
    "hostloss_max": ("host loss -> other host's node leader, max", "s", None),
    "hostloss_two": ("time with two producers, worst run (sampled every 100 ms)", "s", 0.0),
    "etcd_bytes": ("etcd client traffic per instance, idle (received + sent)", "B/s", None),
    "etcd_requests": ("etcd finished RPCs per instance, idle (grpc_server_handled_total)", "req/s", None),
    "etcd_messages": ("etcd stream messages received per instance, idle", "msg/s", None),
}


# ---------------------------------------------------------------------------------------------
# Small helpers


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def wait_for(what: str, condition, timeout: float, step: float = 0.05):
    """Poll `condition()` until it returns something truthy; RuntimeError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of `pid`, in clock ticks."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (gone, or a zombie not yet reaped by supervisord)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: reaped between open and read
        return True


def http_json(method: str, url: str, body: dict | None = None, timeout: float = 5.0):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def parse_ts(text: str) -> float:
    """RFC 3339 (restart log, tracing) -> Unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------------------------
# supervisord with sleeping programs (bench_ctl's) plus simulated nodes


class Pool(bench_ctl.Supervisord):
    """bench_ctl's private supervisord (N `sleep` programs prog_NNN) plus `n_sims` simulated
    nodes node01.. (or node001..), each on its own loopback port, sharing one genesis."""

    def __init__(self, base: Path, n_sleep: int, n_sims: int, args, password: str,
                 listener_socket: Path | None = None):
        width = max(2, len(str(n_sims)))
        self.listener_socket = listener_socket
        self.nodekeeper_bin = args.nodekeeper
        self.sims = [f"node{i + 1:0{width}d}" for i in range(n_sims)]
        self.sim_bin = args.sim
        self.block0 = int(time.time())
        self.sim_port: dict[str, int] = {}
        taken: set[int] = set()
        for name in self.sims:
            port = free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            self.sim_port[name] = port
        base.mkdir(parents=True, exist_ok=True)
        super().__init__(base, n_sleep, args.supervisord, password)
        self.n_programs = n_sleep + n_sims
        self._rpc = supervisor_rpc.proxy(self.url, USER, password)

    def _write_conf(self) -> None:
        super()._write_conf()
        lines = []
        for name in self.sims:
            lines += [
                "",
                f"[program:{name}]",
                f"command={self.sim_bin} --name {name} --listen 127.0.0.1:{self.sim_port[name]} "
                f"--block0-time {self.block0} --bootstrap-secs 1",
                "autostart=true",
                "autorestart=false",
                "startsecs=1",
                "stopsignal=TERM",
                "stopwaitsecs=10",
                "redirect_stderr=true",
                f"stdout_logfile={self.dir}/logs/{name}.log",
                "stdout_logfile_maxbytes=1MB",
            ]
        if self.listener_socket is not None:
            # As `nodekeeper supervisor-conf` generates it.
            lines += [
                "",
                f"[eventlistener:{LISTENER}]",
                f"command={self.nodekeeper_bin} listen --supervisor default --socket {self.listener_socket}",
                "events=PROCESS_STATE",
                "buffer_size=64",
                "autostart=true",
                "autorestart=true",
                "stdout_logfile=NONE",
                f"stderr_logfile={self.dir}/logs/{LISTENER}.log",
            ]
        with open(self.conf, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def info(self, name: str) -> dict:
        # A fresh proxy per call (bench_ctl's transport opens a new connection anyway).
        return self._rpc.supervisor.getProcessInfo(name)

    def fault(self, name: str, fault: str, **extra) -> None:
        http_json("POST", f"http://127.0.0.1:{self.sim_port[name]}/sim/fault", {"fault": fault, **extra})


# ---------------------------------------------------------------------------------------------
# The daemon under test


class Daemon:
    """`nodekeeper run` for the sims of a Pool, with its own config in `dir`."""

    def __init__(self, base: Path, pool: Pool, args, password: str, nodes: list[str] | None = None):
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin = args.nodekeeper
        self.nodes = nodes if nodes is not None else pool.sims
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.config = self.dir / "nodekeeper.toml"
        self.restart_log = self.dir / "restarts.csv"
        self.log_file = self.dir / "nodekeeper.log"
        self.pidfile = self.dir / "nodekeeper.pid"
        self.proc: subprocess.Popen | None = None
        fd = os.open(self.dir / "supervisor.password", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        (self.dir / "template.json").write_text(json.dumps({"rest": {"listen": "127.0.0.1:3100"},
                                                            "storage": "./storage"}))
        lines = [
            "# Generated by scripts/bench_daemon.py: default thresholds except max_restarts.",
            "[supervisor]",
            f'url = "{pool.url}"',
            f'user = "{USER}"',
            'password_file = "supervisor.password"',
            "",
            "[node_defaults]",
            'template = "template.json"',
            'node_dir = "nodes"',
            "",
            "[thresholds]",
            "max_restarts = 1000   # storm protection off: the benchmark crashes nodes on purpose",
            "",
            "[restart_log]",
            'path = "restarts.csv"',
            "",
            "[api]",
            f'listen = "127.0.0.1:{self.api_port}"',
        ]
        for name in self.nodes:
            (self.dir / "nodes" / name).mkdir(parents=True, exist_ok=True)
            lines += ["", "[[nodes]]", f'name = "{name}"', "[nodes.overrides]",
                      f'rest = {{ listen = "127.0.0.1:{pool.sim_port[name]}" }}']
        self.config.write_text("\n".join(lines) + "\n")

    def command(self, *argv: str) -> list[str]:
        return [self.bin, "-c", str(self.config), *argv]

    def start(self, timeout: float = 30) -> None:
        out = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command("run", "--log", "info"), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.pidfile.write_text(f"{self.proc.pid}\n")

        def ready():
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"nodekeeper run exited with {self.proc.returncode}: {' | '.join(tail)}")
            try:
                return len(self.status()["nodes"]) == len(self.nodes)
            except (OSError, ValueError):
                return False

        wait_for("the daemon's first status snapshot", ready, timeout)

    def status(self) -> dict:
        return http_json("GET", f"{self.api}/v1/status", timeout=2)

    def node(self, name: str) -> dict:
        return next(n for n in self.status()["nodes"] if n["name"] == name)

    def rows(self) -> list[dict]:
        if not self.restart_log.exists():
            return []
        with open(self.restart_log, newline="", encoding="utf-8") as f:
            return [{**row, "ts": parse_ts(row["timestamp"])} for row in csv.DictReader(f)]

    def row_after(self, node: str, action: str, after: float) -> dict | None:
        for row in self.rows():
            if row["node name"] == node and row["action"] == action and row["ts"] >= after:
                return row
        return None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.pidfile.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Phases


@dataclass
class Results:
    figures: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def wait_idle(daemon: Daemon, pool: Pool, name: str, timeout: float = 60) -> None:
    """Until supervisord says RUNNING, the daemon is not acting on it and the node is Running."""

    def idle():
        line = daemon.node(name)
        return (line["program_state"] == "RUNNING" and not line["busy"]
                and line["node_state"] == "Running" and pool.info(name)["statename"] == "RUNNING")

    wait_for(f"{name} RUNNING and idle", idle, timeout, step=0.1)


def phase_rss(daemon: Daemon, pool: Pool, results: Results, window: float) -> None:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    listener = int(pool.info(LISTENER)["pid"]) if pool.listener_socket is not None else None
    log(f"rss: sampling the daemon (pid {pid}) every 1 s for {window:g} s, no faults; also "
        f"supervisord (pid {pool.pid}) and the listener (pid {listener})")
    rows_before = len(daemon.rows())
    rss: list[int] = []
    t0, c0 = time.monotonic(), proc_cpu_ticks(pid)
    s0 = proc_cpu_ticks(pool.pid)
    l0 = proc_cpu_ticks(listener) if listener else 0
    while time.monotonic() - t0 < window:
        time.sleep(1)
        rss.append(proc_status_kb(pid, "VmRSS"))
    t1, c1 = time.monotonic(), proc_cpu_ticks(pid)
    s1 = proc_cpu_ticks(pool.pid)
    results.figures["rss_max"] = max(rss) / 1024
    results.figures["cpu"] = (c1 - c0) / CLK_TCK / (t1 - t0) * 100
    results.figures["sup_cpu_idle"] = (s1 - s0) / CLK_TCK / (t1 - t0) * 100
    if listener:
        results.figures["listener_cpu"] = (proc_cpu_ticks(listener) - l0) / CLK_TCK / (t1 - t0) * 100
    results.samples["rss_kb"] = rss
    hwm = proc_status_kb(pid, "VmHWM") / 1024
    results.notes.append(f"daemon VmHWM (peak RSS since start, incl. start-up) {hwm:.1f} MB; "
                         f"RSS min/median/max {min(rss) / 1024:.1f}/{statistics.median(rss) / 1024:.1f}/"
                         f"{max(rss) / 1024:.1f} MB")
    if len(daemon.rows()) != rows_before:
        results.notes.append("WARNING: restart-log rows appeared during the steady-state window")


def running_again(pool: Pool, name: str, old_pid: int):
    """The moment supervisord reports `name` RUNNING in a process other than `old_pid`."""
    info = pool.info(name)
    return info["statename"] == "RUNNING" and int(info["pid"]) != old_pid and time.time()


def phase_hang(daemon: Daemon, pool: Pool, results: Results, hangs: int, slow_window: float) -> None:
    slow_node = pool.sims[-1]
    candidates = pool.sims[:-1]
    log(f"hang: {hangs} hangs over {', '.join(candidates)}; {slow_node} answers every request 1 s "
        f"late meanwhile (for {slow_window:g} s at least)")
    slow_start = time.time()
    pool.fault(slow_node, "slow", delay_ms=1000)
    t = time.perf_counter()
    urllib.request.urlopen(f"http://127.0.0.1:{pool.sim_port[slow_node]}/api/v0/node/stats", timeout=5).read()
    results.notes.append(f"{slow_node} under `slow 1000`: one /api/v0/node/stats took "
                         f"{(time.perf_counter() - t) * 1000:.0f} ms")
    latencies: list[float] = []
    restarts: list[float] = []
    failures = 0
    for i in range(hangs):
        name = candidates[i % len(candidates)]
        wait_idle(daemon, pool, name)
        old_pid = int(pool.info(name)["pid"])
        time.sleep(random.random())
        injected = time.time()
        pool.fault(name, "hang")
        try:
            up = wait_for(f"hung {name} RUNNING again in a new process",
                          lambda: running_again(pool, name, old_pid), 30, step=0.01)
        except RuntimeError as e:
            failures += 1
            log(f"hang {i + 1}/{hangs}: {name}: {e}")
            pool.fault(name, "none")
            continue
        row = daemon.row_after(name, "stop", injected)
        latencies.append(up - injected)
        if row is not None:
            restarts.append(row["ts"] - injected)
        log(f"hang {i + 1}/{hangs}: {name}: RUNNING again after {(up - injected) * 1000:.0f} ms"
            + (f", restart issued after {(row['ts'] - injected) * 1000:.0f} ms ({row['reason']})" if row else ""))
    # The slow node must have been watched for at least the window.
    remaining = slow_start + slow_window - time.time()
    if remaining > 0:
        log(f"hang: keeping {slow_node} slow {remaining:.0f} s more ({slow_window:g} s in all)")
        time.sleep(remaining)
    slow_rows = [r for r in daemon.rows() if r["node name"] == slow_node and r["ts"] >= slow_start]
    watched = time.time() - slow_start
    pool.fault(slow_node, "none")
    results.figures["slow_rows"] = float(len(slow_rows))
    results.notes.append(f"{slow_node} answered 1 s late for {watched:.0f} s: {len(slow_rows)} restart-log row(s)"
                         + (f": {[r['reason'] for r in slow_rows]}" if slow_rows else ""))
    results.samples["hang_running_s"] = latencies
    results.samples["hang_restart_s"] = restarts
    if latencies:
        results.figures["hang_median"] = statistics.median(latencies) * 1000
        results.figures["hang_max"] = max(latencies) * 1000
    if restarts:
        results.figures["hang_restart_median"] = statistics.median(restarts) * 1000
    if failures:
        results.notes.append(f"WARNING: {failures} hang(s) not RUNNING again within 30 s")


def crashes_of(daemon: Daemon, pool: Pool, crashes: int, what: str):
    """`crashes` crashes round-robin on the first three nodes: (start row - process exit, start row -
    fault request, RUNNING again - process exit) for each."""
    targets = pool.sims[:3]
    log(f"{what}: {crashes} crashes round-robin on {', '.join(targets)}")
    from_exit: list[float] = []
    from_fault: list[float] = []
    to_running: list[float] = []
    for i in range(crashes):
        name = targets[i % len(targets)]
        wait_idle(daemon, pool, name)
        pid = int(pool.info(name)["pid"])
        time.sleep(random.random())
        injected = time.time()
        pool.fault(name, "crash")
        exited = wait_for(f"{name} (pid {pid}) to exit", lambda: process_gone(pid) and time.time(), 10,
                          step=0.001)
        row = wait_for(f"a start row for crashed {name}", lambda: daemon.row_after(name, "start", injected), 30,
                       step=0.01)
        up = wait_for(f"{name} RUNNING again", lambda: running_again(pool, name, pid), 30, step=0.01)
        from_exit.append(row["ts"] - exited)
        from_fault.append(row["ts"] - injected)
        to_running.append(up - exited)
        log(f"{what} {i + 1}/{crashes}: {name}: exited {(exited - injected) * 1000:.0f} ms after the fault, "
            f"start issued {(row['ts'] - exited) * 1000:.0f} ms after the exit ({row['reason']}), "
            f"RUNNING {(up - exited) * 1000:.0f} ms after it")
    return from_exit, from_fault, to_running


def phase_crash(daemon: Daemon, pool: Pool, results: Results, crashes: int) -> None:
    from_exit, from_fault, to_running = crashes_of(daemon, pool, crashes, "crash")
    results.samples["crash_from_exit_s"] = from_exit
    results.samples["crash_from_fault_s"] = from_fault
    results.samples["crash_to_running_s"] = to_running
    results.figures["crash_p50"] = statistics.median(from_exit) * 1000
    results.figures["crash_p95"] = percentile(from_exit, 95) * 1000
    results.figures["crash_fault_p95"] = percentile(from_fault, 95) * 1000
    results.figures["crash_running_p50"] = statistics.median(to_running) * 1000


def phase_crash_poll(args, base: Path, password: str, results: Results) -> None:
    """The same crashes on a pool without the event listener: the poll alone."""
    pool = Pool(base / "poll", 0, 10, args, password)
    daemon = None
    try:
        log(f"crash-poll: supervisord on 127.0.0.1:{pool.port} with 10 simulated nodes, no listener")
        pool.start(timeout=30)
        daemon = Daemon(base / "poll" / "daemon", pool, args, password)
        daemon.start()
        from_exit, _, _ = crashes_of(daemon, pool, args.poll_crashes, "crash-poll")
        results.samples["poll_from_exit_s"] = from_exit
        results.figures["poll_p50"] = statistics.median(from_exit) * 1000
        results.figures["poll_p95"] = percentile(from_exit, 95) * 1000
    finally:
        if daemon is not None:
            daemon.stop()
        pool.close()


def phase_neighbour(daemon: Daemon, pool: Pool, results: Results, crashes: int) -> None:
    """Crash -> start while another node answers every probe in 1.9 s (just inside probe_timeout):
    a tick decides only once every probe has finished, so a slow or hung node delays every action."""
    slow = pool.sims[-1]
    targets = pool.sims[:3]
    log(f"neighbour: {slow} answers in 1900 ms; {crashes} crashes round-robin on {', '.join(targets)}")
    pool.fault(slow, "slow", delay_ms=1900)
    latencies: list[float] = []
    try:
        for i in range(crashes):
            name = targets[i % len(targets)]
            wait_idle(daemon, pool, name)
            pid = int(pool.info(name)["pid"])
            time.sleep(random.random() * 2)
            injected = time.time()
            pool.fault(name, "crash")
            exited = wait_for(f"{name} (pid {pid}) to exit", lambda: process_gone(pid) and time.time(), 10,
                              step=0.002)
            row = wait_for(f"a start row for crashed {name}", lambda: daemon.row_after(name, "start", injected), 30)
            latencies.append(row["ts"] - exited)
            log(f"neighbour {i + 1}/{crashes}: {name}: start issued {(row['ts'] - exited) * 1000:.0f} ms after the exit")
    finally:
        pool.fault(slow, "none")
    results.samples["neighbour_from_exit_s"] = latencies
    results.figures["neighbour_p50"] = statistics.median(latencies) * 1000
    results.figures["neighbour_max"] = max(latencies) * 1000


def run_pool(args, base: Path, password: str, results: Results, phases: set[str]) -> None:
    daemon_dir = base / "pool" / "daemon"
    pool = Pool(base / "pool", 0, 10, args, password, listener_socket=daemon_dir / "nodekeeper-events.sock")
    daemon = None
    try:
        log(f"pool: supervisord on 127.0.0.1:{pool.port} with 10 simulated nodes and the event listener")
        pool.start(timeout=30)
        daemon = Daemon(daemon_dir, pool, args, password)
        daemon.start()
        log(f"pool: nodekeeper run (pid {daemon.proc.pid}) managing 10 nodes, API on {daemon.api}")
        if "rss" in phases:
            phase_rss(daemon, pool, results, args.window)
        if "hang" in phases:
            phase_hang(daemon, pool, results, args.hangs, args.slow_window)
        if "crash" in phases:
            phase_crash(daemon, pool, results, args.crashes)
        if "neighbour" in phases:
            phase_neighbour(daemon, pool, results, args.neighbour_crashes)
    finally:
        if daemon is not None:
            daemon.stop()
        pool.close()


def timed(argv: list[str], expect: str | None = None) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0 or (expect is not None and expect not in proc.stdout):
        raise RuntimeError(f"{' '.join(argv[:4])}... failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    return elapsed


def phase_tick(args, base: Path, password: str, results: Results) -> None:
    n = args.tick_nodes
    pool = Pool(base / "tick", 0, n, args, password)
    try:
        log(f"tick: supervisord on 127.0.0.1:{pool.port} with {n} simulated nodes")
        t0 = time.perf_counter()
        pool.start(timeout=30 + n * 0.2)
        log(f"tick: all {n} RUNNING after {time.perf_counter() - t0:.1f} s")
        daemon = Daemon(base / "tick" / "daemon", pool, args, password)
        last = pool.sims[-1]
        # Let every sim finish bootstrapping (1 s), so each probe gets a full Running answer.
        wait_for(f"{last} Running", lambda: http_json(
            "GET", f"http://127.0.0.1:{pool.sim_port[last]}/api/v0/node/stats")["state"] == "Running", 20)
        time.sleep(1.5)
        status = json.loads(subprocess.run(daemon.command("status", "--json"), capture_output=True,
                                           text=True, check=True).stdout)
        running = sum(1 for line in status["nodes"] if line["node_state"] == "Running")
        if running != n:
            results.notes.append(f"WARNING: tick: only {running}/{n} nodes Running in the status")
        status_times, check_times, tick_times, cpu_times = [], [], [], []
        for _ in range(args.tick_runs):
            check_times.append(timed(daemon.command("config", "check"), "ok"))
            status_times.append(timed(daemon.command("status", "--json"), last))
            # In-process: the first (and only) tick of a dry run, between its two log lines.
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run(daemon.command("run", "--once", "--dry-run", "--log", "nodekeeper=info"),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            stamps = {}
            for line in proc.stderr.splitlines():
                for key, marker in (("begin", "nodekeeper running"), ("end", "nodekeeper stopped")):
                    if marker in line:
                        stamps[key] = parse_ts(line.split()[0])
            if proc.returncode != 0 or len(stamps) != 2:
                raise RuntimeError(f"run --once --dry-run: exit {proc.returncode}, log: {proc.stderr.strip()[-300:]}")
            if "would" in proc.stderr:
                results.notes.append("WARNING: tick: the dry run decided something: "
                                     + next(l for l in proc.stderr.splitlines() if "would" in l))
            tick_times.append(stamps["end"] - stamps["begin"])
        results.samples.update(tick_inproc_s=tick_times, status_s=status_times, check_s=check_times)
        results.figures["tick_inproc_p50"] = statistics.median(tick_times) * 1000
        results.figures["tick_inproc_max"] = max(tick_times) * 1000
        results.figures["status_p50"] = statistics.median(status_times) * 1000
        results.figures["check_p50"] = statistics.median(check_times) * 1000
        results.figures["tick_cpu_p50"] = statistics.median(cpu_times) * 1000
        results.samples["tick_cpu_s"] = cpu_times
        log(f"tick: in-process {results.figures['tick_inproc_p50']:.0f} ms, status "
            f"{results.figures['status_p50']:.0f} ms, config check {results.figures['check_p50']:.0f} ms (p50)")
    finally:
        pool.close()


def phase_supervisord(args, base: Path, password: str, results: Results) -> None:
    n_sims, n_sleep = 10, 490
    pool = Pool(base / "sup", n_sleep, n_sims, args, password)
    daemon = None
    try:
        log(f"supervisord: 127.0.0.1:{pool.port} with {n_sleep} sleep programs + {n_sims} sims")
        t0 = time.perf_counter()
        pool.start(timeout=30 + (n_sleep + n_sims) * 0.1)
        log(f"supervisord: all {n_sleep + n_sims} RUNNING after {time.perf_counter() - t0:.1f} s; "
            f"baseline {args.window:g} s without the daemon")
        time.sleep(3)

        def window() -> float:
            t, c = time.monotonic(), proc_cpu_ticks(pool.pid)
            time.sleep(args.window)
            return (proc_cpu_ticks(pool.pid) - c) / CLK_TCK / (time.monotonic() - t) * 100

        base_cpu = window()
        daemon = Daemon(base / "sup" / "daemon", pool, args, password)
        daemon.start()
        time.sleep(2)
        log(f"supervisord: baseline {base_cpu:.2f} % of a core; now {args.window:g} s with the daemon "
            f"managing the {n_sims} sims")
        with_cpu = window()
        rows = daemon.rows()
        if rows:
            results.notes.append(f"WARNING: supervisord phase: the daemon acted ({len(rows)} rows)")
        results.figures["sup_cpu_base"] = base_cpu
        results.figures["sup_cpu"] = with_cpu - base_cpu
        results.notes.append(f"supervisord CPU with the daemon {with_cpu:.2f} % of a core, "
                             f"baseline {base_cpu:.2f} %")
    finally:
        if daemon is not None:
            daemon.stop()
        pool.close()


# ---------------------------------------------------------------------------------------------
# hostloss: two simulated hosts sharing a 3-member etcd ([cluster])


class Host(bench_ctl.Supervisord):
    """One simulated host: its own supervisord (its own session: the host) with this instance's
    sims (booting without the key), and the event listener, the host's fence and `nodekeeper run`
    as `nodekeeper supervisor-conf` generates them for the host's config ([cluster], default
    lease_ttl). `kill()` is the host loss: SIGKILL of the whole session."""

    def __init__(self, base: Path, name: str, pool: dict[str, tuple[str, int]], args, password: str,
                 endpoints: list[str], block0: int, secret: Path):
        self.name = name
        self.pool = pool
        self.sims = [node for node, (host, _) in pool.items() if host == name]
        # The simulator under jormungandr's own name, so that nodekeeper reads the command line as
        # jormungandr's: without --secret, the node boots without the key.
        bin_dir = base.parent / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        if not (bin_dir / "jormungandr").exists():
            (bin_dir / "jormungandr").symlink_to(args.sim)
        self.sim_bin = str(bin_dir / "jormungandr")
        self.nodekeeper_bin = args.nodekeeper
        self.block0 = block0
        base.mkdir(parents=True, exist_ok=True)
        super().__init__(base, 0, args.supervisord, password)
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.config = self.dir / "nodekeeper.toml"
        fd = os.open(self.dir / "supervisor.password", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        (self.dir / "template.json").write_text(json.dumps({"rest": {"listen": "127.0.0.1:3100"},
                                                            "storage": "./storage"}))
        lines = [
            "# Generated by scripts/bench_daemon.py (hostloss): default thresholds and lease_ttl.",
            "[cluster]",
            f'name = "{name}"',
            "etcd = [" + ", ".join(f'"{e}"' for e in endpoints) + "]",
            "",
            "[supervisor]",
            f'url = "{self.url}"',
            f'user = "{USER}"',
            'password_file = "supervisor.password"',
            "",
            "[node_defaults]",
            'template = "template.json"',
            'node_dir = "nodes"',
            "",
            "[thresholds]",
            "max_restarts = 1000",
            "",
            "[restart_log]",
            'path = "restarts.csv"',
            "",
            "[leadership]",
            "enabled = true",
            f'secret_file = "{secret}"',
            "slot_window = 4               # slots of 2 s, as in the demo",
            'schedule_refresh_min_gap = "20s"',
            'state_file = "leader-state.json"',
            "",
            "[api]",
            f'listen = "127.0.0.1:{self.api_port}"',
        ]
        for node, (host, port) in pool.items():
            (self.dir / "nodes" / node).mkdir(parents=True, exist_ok=True)
            lines += ["", "[[nodes]]", f'name = "{node}"', f'instance = "{host}"', "[nodes.overrides]",
                      f'rest = {{ listen = "127.0.0.1:{port}" }}']
        self.config.write_text("\n".join(lines) + "\n")
        conf_d = self.dir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        proc = subprocess.run([self.nodekeeper_bin, "-c", str(self.config), "supervisor-conf", "--dir", str(conf_d)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"supervisor-conf for host {name}: {proc.stderr.strip()[-300:]}")
        for node in self.sims:  # the nodes' sections: the simulators below instead
            (conf_d / f"{node}.conf").unlink(missing_ok=True)
        self.programs = sorted(p.stem for p in conf_d.glob("*.conf"))

    def _write_conf(self) -> None:
        super()._write_conf()
        lines = ["", "[include]", f"files={self.dir}/conf.d/*.conf"]
        for name in self.sims:
            port = self.pool[name][1]
            lines += [
                "",
                f"[program:{name}]",
                f"command={self.sim_bin} --name {name} --listen 127.0.0.1:{port} --block0-time {self.block0} "
                "--slot-duration 2 --slots-per-epoch 60 --pool-slots-per-epoch 3 --bootstrap-secs 1",
                "autostart=true",
                "autorestart=false",
                "startsecs=1",
                "stopsignal=TERM",
                "stopwaitsecs=10",
                "redirect_stderr=true",
                f"stdout_logfile={self.dir}/logs/{name}.log",
                "stdout_logfile_maxbytes=1MB",
            ]
        with open(self.conf, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout: float = 30) -> None:
        out = open(self.dir / "supervisord.out", "ab")
        self.proc = subprocess.Popen([self.supervisord, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        server = supervisor_rpc.proxy(self.url, USER, self.password)
        supervisor_rpc.wait_running(server, None, timeout, quiet=True)

    def kill(self) -> list[int]:
        """Host loss: SIGKILL every process of the supervisord's session, then reap it."""
        assert self.proc is not None
        killed = hosts.kill_session(self.proc.pid)
        self.proc.wait()
        return killed

    def status(self) -> dict | None:
        try:
            return http_json("GET", f"{self.api}/v1/status", timeout=2)
        except (OSError, ValueError):
            return None

    def election(self) -> str | None:
        status = self.status()
        return ((status or {}).get("cluster") or {}).get("election")


def phase_hostloss(args, base: Path, password: str, results: Results) -> None:
    """Host loss with two instances: kill -9 the elected host (its supervisord's whole session),
    time until the other host's node answers as leader; every sim's leaders sampled every 100 ms
    for any time with two producers; then the etcd traffic of the two idle instances."""
    etcd = hosts.Etcd(args.etcd, base / "hostloss" / "etcd", 3)
    group: dict[str, Host] = {}
    sampler: hosts.Sampler | None = None
    try:
        etcd.start()
        log(f"hostloss: etcd members on {', '.join(etcd.endpoints)}")
        secret = base / "hostloss" / "pool-secret.yaml"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"genesis:\n  sig_key: kes25519-12-sk1bench\n  vrf_key: vrf_sk1bench\n"
                    f"  node_id: {secrets.token_hex(32)}\n")
        taken: set[int] = set()
        pool: dict[str, tuple[str, int]] = {}
        for h, host in enumerate(("a", "b")):
            for i in range(args.hostloss_sims):
                pool[f"node{h * args.hostloss_sims + i + 1}"] = (host, hosts.free_port(taken))
        block0 = int(time.time())
        for host in ("a", "b"):
            group[host] = Host(base / "hostloss" / host, host, pool, args, password, etcd.endpoints, block0, secret)
        for host in group.values():
            host.start()
            log(f"hostloss: host {host.name}: supervisord on 127.0.0.1:{host.port} with "
                f"{', '.join(host.sims)} and {', '.join(host.programs)}; API {host.api}")
        rests = {node: f"http://127.0.0.1:{port}/api/v0" for node, (_, port) in pool.items()}
        sampler = hosts.Sampler(rests).start()

        def settled():
            elections = sorted(str(h.election()) for h in group.values())
            now = hosts.producers(rests)
            return elections == ["elected", "follower"] and len(now) == 1 and now

        def healthy(name: str, peer: str) -> bool:
            """Host `name`'s daemon is a follower, its nodes RUNNING and Running, and host `peer`
            sees its instance."""
            status, seen = group[name].status(), group[peer].status()
            if not status or not seen:
                return False
            own = [n for n in status["nodes"] if n.get("instance") == name]
            return ((status.get("cluster") or {}).get("election") == "follower"
                    and len(own) == len(group[name].sims)
                    and all(n["program_state"] == "RUNNING" and n["node_state"] == "Running" for n in own)
                    and name in ((seen.get("cluster") or {}).get("instances") or []))

        first = wait_for("one elected instance, one follower and exactly one producer", settled, 120, step=0.2)
        log(f"hostloss: producing: {', '.join(sorted(first))}")

        # Idle etcd traffic: both instances up, nothing happening.
        m0, t0 = etcd.metrics(), time.monotonic()
        time.sleep(args.window)
        m1, t1 = etcd.metrics(), time.monotonic()
        per = {k: (m1[k] - m0[k]) / (t1 - t0) / len(group) for k in m0}
        results.figures["etcd_bytes"] = per["rx_bytes"] + per["tx_bytes"]
        results.figures["etcd_requests"] = per["handled"]
        results.figures["etcd_messages"] = per["msg_received"]
        results.notes.append(f"etcd at idle over {t1 - t0:.0f} s, per instance: {per['rx_bytes']:.0f} B/s "
                             f"received, {per['tx_bytes']:.0f} B/s sent by etcd, {per['handled']:.2f} finished "
                             f"RPCs/s, {per['msg_received']:.2f} stream messages/s (3 members summed)")

        latencies: list[float] = []
        overlaps: list[float] = []
        run_from = time.time()
        for i in range(args.hostlosses):
            producing = wait_for("exactly one producer", settled, 120, step=0.2)
            (node,) = producing
            victim = pool[node][0]
            survivor = next(h for h in group if h != victim)
            others = {n: rests[n] for n, (h, _) in pool.items() if h == survivor}
            time.sleep(random.random())
            killed_at = time.time()
            killed = group[victim].kill()
            promoted = wait_for(f"a node of host {survivor} answering as leader",
                                lambda: hosts.producers(others) and time.time(), 120, step=0.02)
            new = sorted(hosts.producers(others))
            latencies.append(promoted - killed_at)
            group[victim].start()
            wait_for(f"host {victim} healthy again (a follower, its nodes Running, seen by host {survivor})",
                     lambda: healthy(victim, survivor), 90, step=0.2)
            wait_for("exactly one producer again", settled, 60, step=0.2)
            run_to = time.time()
            two, n_two = sampler.overlap(run_from, run_to)
            overlaps.append(two)
            log(f"hostloss {i + 1}/{args.hostlosses}: host {victim} ({node}) killed ({len(killed)} processes); "
                f"{', '.join(new)} on host {survivor} leader after {(promoted - killed_at):.2f} s; "
                f"host {victim} back as a follower after {run_to - promoted:.1f} s; two producers: {two:.1f} s"
                + (f" ({[(round(t - killed_at, 1), sorted(s)) for t, s in sampler.overlaps(run_from, run_to)][:5]})"
                   if n_two else ""))
            run_from = run_to
        results.samples["hostloss_s"] = latencies
        results.samples["hostloss_two_producers_s"] = overlaps
        results.figures["hostloss_median"] = statistics.median(latencies)
        results.figures["hostloss_max"] = max(latencies)
        results.figures["hostloss_two"] = max(overlaps)
        results.notes.append(f"host loss -> new leader, s: {', '.join(f'{x:.2f}' for x in latencies)}; "
                             f"runs with two producers: {sum(1 for x in overlaps if x > 0)}/{len(overlaps)}")
    finally:
        if sampler is not None:
            sampler.stop()
        for host in group.values():
            if host.proc is not None and host.proc.poll() is None:
                try:
                    supervisor_rpc.proxy(host.url, USER, password).supervisor.stopProcess("nodekeeper")
                except Exception:  # noqa: BLE001 - teardown goes on
                    pass
            host.close()
        etcd.close()


# ---------------------------------------------------------------------------------------------
# Report


def print_table(results: Results, args, elapsed: float) -> list[str]:
    print()
    print(f"nodekeeper control loop against {args.supervisor_version} and nodekeeper-sim; "
          f"{os.cpu_count()} CPUs, {platform.platform(terse=True)}")
    print(f"load average (1 min) at start {args.load_start:.2f}, at end {os.getloadavg()[0]:.2f}; "
          f"ran {elapsed:.0f} s; crashes {args.crashes}, hangs {args.hangs}, window {args.window:g} s, "
          f"tick runs {args.tick_runs} at {args.tick_nodes} nodes, host losses {args.hostlosses}")
    print()
    header = f"{'figure':<64}  {'value':>9}  {'goal':>9}  {'':<7}"
    print(header)
    print("-" * len(header))
    not_met = []
    for key, (label, unit, limit) in GOALS.items():
        if key not in results.figures:
            continue
        label = label.format(n=args.tick_nodes)
        value = results.figures[key]
        shown = f"{value:.0f}" if unit in ("ms", "rows", "B/s") else f"{value:.2f}"
        goal = "" if limit is None else f"<= {limit:g}"
        verdict = "" if limit is None else ("met" if value <= limit else "NOT MET")
        if verdict == "NOT MET":
            not_met.append(label)
        print(f"{label:<64}  {shown:>9}  {goal:>9}  {unit:<7} {verdict}")
    if results.notes:
        print()
        for note in results.notes:
            print(f"note: {note}")
    return not_met


def main() -> int:
    venv_bin = Path(sys.executable).parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES),
                        help="what to run (default: all)")
    parser.add_argument("--crashes", type=int, default=60,
                        help="injected crashes with the event listener (default 60)")
    parser.add_argument("--poll-crashes", type=int, default=30,
                        help="injected crashes without the listener, polling only (default 30)")
    parser.add_argument("--slow-window", type=float, default=300,
                        help="seconds a node answers every request 1 s late during the hang phase (default 300)")
    parser.add_argument("--hangs", type=int, default=10, help="injected hangs (default 10)")
    parser.add_argument("--neighbour-crashes", type=int, default=8,
                        help="crashes while another node answers in 1.9 s (default 8)")
    parser.add_argument("--window", type=float, default=60,
                        help="seconds of each CPU/RSS window and of the slow node (default 60)")
    parser.add_argument("--tick-nodes", type=int, default=200, help="sims of the tick phase (default 200)")
    parser.add_argument("--tick-runs", type=int, default=10, help="timed runs of the tick phase (default 10)")
    parser.add_argument("--hostlosses", type=int, default=10, help="host losses of the hostloss phase (default 10)")
    parser.add_argument("--hostloss-sims", type=int, default=2, help="sims per host in the hostloss phase (default 2)")
    parser.add_argument("--etcd", default=os.environ.get("NODEKEEPER_ETCD", str(venv_bin / "etcd")))
    parser.add_argument("--nodekeeper", default=str(ROOT / "target/release/nodekeeper"))
    parser.add_argument("--sim", default=str(ROOT / "target/release/nodekeeper-sim"))
    parser.add_argument("--supervisord", default=str(venv_bin / "supervisord"))
    parser.add_argument("--json", help="also write the figures and raw samples to this file")
    parser.add_argument("--workdir", help="directory for the temporary supervisords (default: a new temp dir)")
    args = parser.parse_args()
    if args.crashes < 1 or args.hangs < 1 or args.neighbour_crashes < 1 or args.window < 1 or args.tick_runs < 1 or \
            not 1 <= args.tick_nodes <= 999 or args.hostlosses < 1 or args.hostloss_sims < 1:
        parser.error("need --crashes, --hangs, --tick-runs >= 1, --window >= 1, --tick-nodes in 1..999")
    for exe in (args.nodekeeper, args.sim, args.supervisord):
        if not os.access(exe, os.X_OK):
            print(f"error: {exe} not found (build with cargo build --release --workspace --bins)", file=sys.stderr)
            return 1
    args.supervisor_version = "supervisord " + (subprocess.run(
        [args.supervisord, "--version"], capture_output=True, text=True).stdout.strip() or "?")

    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    args.load_start = os.getloadavg()[0]
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="nodekeeper-bench-daemon-"))
    base.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    phases = set(args.phases)
    results = Results()
    started = time.monotonic()
    failed: list[str] = []
    groups = [
        ("pool (rss, hang, crash, neighbour)", phases & {"rss", "hang", "crash", "neighbour"},
         lambda: run_pool(args, base, password, results, phases)),
        ("crash-poll", phases & {"crash-poll"}, lambda: phase_crash_poll(args, base, password, results)),
        ("tick", phases & {"tick"}, lambda: phase_tick(args, base, password, results)),
        ("supervisord", phases & {"supervisord"}, lambda: phase_supervisord(args, base, password, results)),
        ("hostloss", phases & {"hostloss"}, lambda: phase_hostloss(args, base, password, results)),
    ]
    try:
        for name, wanted, run in groups:
            if not wanted:
                continue
            try:
                run()
            except Exception as e:  # noqa: BLE001 - the other phases still run, figures still print
                if not isinstance(e, RuntimeError):
                    traceback.print_exc()
                print(f"error: {name}: {e}", file=sys.stderr)
                failed.append(name)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if not args.workdir:
            import shutil

            shutil.rmtree(base, ignore_errors=True)

    not_met = print_table(results, args, time.monotonic() - started)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"figures": results.figures, "samples": results.samples, "notes": results.notes}, f, indent=1)
    if not_met:
        print(f"\nnote: goal(s) not met: {'; '.join(not_met)}", file=sys.stderr)
    if failed:
        print(f"\nerror: not everything could be measured: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
