#!/usr/bin/env python3
"""Simulated hosts for nodekeeper's [cluster]: etcd on loopback, host loss (SIGKILL of a
supervisord's whole session: the supervisord, its nodes, its listener, its fence and its
`nodekeeper run`), the sims' leader answers sampled every 100 ms, and etcd's traffic from its
Prometheus metrics. Used by `scripts/bench.sh daemon --phases hostloss` (scripts/bench_daemon.py)
and, as a command, by `scripts/demo.sh --hosts 2 watch`:

    .venv/bin/python scripts/hosts.py watch --nodekeeper target/release/nodekeeper \\
        --host a=.demo/hosts/a --host b=.demo/hosts/b \\
        --node node1@a=http://127.0.0.1:PORT1 ... [--every 60] [--for 300]

Each host directory holds supervisord.conf, supervisord.pid and nodekeeper.toml (as demo.sh
writes them); the host's supervisord daemonizes into its own session, so the session is the host.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def free_port(taken: set[int]) -> int:
    import socket

    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port


# ---------------------------------------------------------------------------------------------
# Processes


def session_of(pid: int) -> int | None:
    """The session id of `pid` (field 6 of /proc/PID/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def session_pids(sid: int) -> list[int]:
    """Every live process of session `sid`, the leader first."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and session_of(int(entry)) == sid:
            pids.append(int(entry))
    return sorted(pids, key=lambda p: p != sid)


def kill_session(sid: int) -> list[int]:
    """Host loss: SIGKILL every process of session `sid` (supervisord first, so that it restarts
    nothing), repeated until none is left. Returns the pids killed."""
    killed: list[int] = []
    for _ in range(50):
        pids = session_pids(sid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return sorted(set(killed))


def read_pidfile(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip() or "0")
    except (OSError, ValueError):
        return None
    if pid <= 0 or session_of(pid) is None:
        return None
    return pid


# ---------------------------------------------------------------------------------------------
# HTTP


def get_json(url: str, timeout: float = 1.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def leaders(rest: str, timeout: float = 0.5) -> list | None:
    """The sim's `GET /api/v0/leaders` (a list of leader ids), None when it does not answer a list
    (down, booting)."""
    try:
        answer = get_json(f"{rest.rstrip('/')}/leaders", timeout)
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, list) else None


def producers(nodes: dict[str, str]) -> set[str]:
    """The nodes (name -> REST base .../api/v0) whose leaders list is not empty, asked at once."""
    found: set[str] = set()
    lock = threading.Lock()

    def ask(name: str, rest: str) -> None:
        if leaders(rest):
            with lock:
                found.add(name)

    threads = [threading.Thread(target=ask, args=item, daemon=True) for item in nodes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found


@dataclass
class Sampler:
    """Every `every` s, which nodes produce; keeps (time, producers) samples while running."""

    nodes: dict[str, str]
    every: float = 0.1
    samples: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "Sampler":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.time(), frozenset(producers(self.nodes))))
            next_at += self.every
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def overlap(self, since: float, until: float) -> tuple[float, int]:
        """Seconds (samples x interval) and sample count with two or more producers in [since, until]."""
        bad = [s for t, s in self.samples if since <= t <= until and len(s) >= 2]
        return len(bad) * self.every, len(bad)

    def overlaps(self, since: float, until: float) -> list[tuple[float, frozenset[str]]]:
        return [(t, s) for t, s in self.samples if since <= t <= until and len(s) >= 2]


# ---------------------------------------------------------------------------------------------
# etcd


class Etcd:
    """`members` etcd members on loopback (a fresh cluster in `base`), stopped by close()."""

    def __init__(self, binary: str, base: Path, members: int = 3):
        self.binary = binary
        self.base = base
        taken: set[int] = set()
        self.names = [f"m{i + 1}" for i in range(members)]
        self.client = {n: free_port(taken) for n in self.names}
        self.peer = {n: free_port(taken) for n in self.names}
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{self.client[n]}" for n in self.names]

    def start(self, timeout: float = 30) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        for n in self.names:
            client, peer = f"http://127.0.0.1:{self.client[n]}", f"http://127.0.0.1:{self.peer[n]}"
            out = open(self.base / f"etcd-{n}.log", "ab")
            self.procs[n] = subprocess.Popen(
                [self.binary, "--name", n, "--data-dir", str(self.base / f"etcd-{n}.data"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", cluster, "--initial-cluster-state", "new",
                 "--initial-cluster-token", f"nodekeeper-{os.getpid()}", "--log-level", "warn"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            out.close()
            (self.base / f"etcd-{n}.pid").write_text(f"{self.procs[n].pid}\n")
        deadline = time.monotonic() + timeout
        for n in self.names:
            while True:
                if self.procs[n].poll() is not None:
                    tail = (self.base / f"etcd-{n}.log").read_text(errors="replace").strip().splitlines()[-3:]
                    raise RuntimeError(f"etcd {n} exited with {self.procs[n].returncode}: {' | '.join(tail)}")
                try:
                    if get_json(f"http://127.0.0.1:{self.client[n]}/health").get("health") == "true":
                        break
                except (OSError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd {n} not healthy after {timeout:g} s; see {self.base}/etcd-{n}.log")
                time.sleep(0.1)

    def metrics(self) -> dict[str, float]:
        """Client traffic counters summed over the members: bytes received and sent over gRPC,
        finished RPCs (grpc_server_handled_total) and stream messages received."""
        wanted = {
            "etcd_network_client_grpc_received_bytes_total": "rx_bytes",
            "etcd_network_client_grpc_sent_bytes_total": "tx_bytes",
            "grpc_server_handled_total": "handled",
            "grpc_server_msg_received_total": "msg_received",
        }
        total = {v: 0.0 for v in wanted.values()}
        for n in self.names:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client[n]}/metrics", timeout=5) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("#"):
                        continue
                    name = line.split("{", 1)[0].split(" ", 1)[0]
                    if name in wanted:
                        total[wanted[name]] += float(line.rsplit(" ", 1)[1])
        return total

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------------------------------------
# `watch`: the demo's host-loss loop


class DemoHost:
    def __init__(self, name: str, directory: Path, supervisord: str):
        self.name = name
        self.dir = directory
        self.conf = directory / "supervisord.conf"
        self.pidfile = directory / "supervisord.pid"
        self.config = directory / "nodekeeper.toml"
        self.supervisord = supervisord

    def pid(self) -> int | None:
        return read_pidfile(self.pidfile)

    def kill(self) -> list[int]:
        pid = self.pid()
        return kill_session(pid) if pid is not None else []

    def start(self) -> None:
        (self.dir / "supervisor.sock").unlink(missing_ok=True)
        subprocess.run([self.supervisord, "-c", str(self.conf)], check=True)


def status_json(nodekeeper: str, config: Path) -> dict | None:
    proc = subprocess.run([nodekeeper, "-c", str(config), "status", "--json"], capture_output=True, text=True,
                          timeout=20)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return None


def elected_of(status: dict | None) -> str | None:
    cluster = (status or {}).get("cluster") or {}
    if cluster.get("election") == "elected":
        return cluster.get("instance")
    return cluster.get("leader")


def watch(args) -> int:
    hosts: dict[str, DemoHost] = {}
    for spec in args.host:
        name, _, path = spec.partition("=")
        hosts[name] = DemoHost(name, Path(path), args.supervisord)
    nodes: dict[str, str] = {}
    host_of: dict[str, str] = {}
    for spec in args.node:
        left, _, url = spec.partition("=")
        node, _, host = left.partition("@")
        nodes[node], host_of[node] = url, host
    sampler = Sampler(nodes).start()
    deadline = None if args.for_s == 0 else time.monotonic() + args.for_s
    stop = False

    def _interrupt(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)

    def sleep_until(t: float) -> bool:
        while time.monotonic() < t:
            if stop or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(0.2)
        return True

    def show_status(host: DemoHost) -> None:
        print(f"$ target/release/nodekeeper -c {os.path.relpath(host.config)} status", flush=True)
        subprocess.run([args.nodekeeper, "-c", str(host.config), "status"], timeout=20)

    losses = 0
    try:
        print(f"{BOLD}A host loss every ~{args.every:g} s: SIGKILL of the elected instance's whole host "
              f"(its supervisord, nodes, listener, fence and nodekeeper run){RESET}", flush=True)
        next_loss = time.monotonic() + min(args.every, 15)
        while not stop:
            if not sleep_until(next_loss):
                break
            now_producing = producers(nodes)
            live = {h for h, host in hosts.items() if host.pid() is not None}
            statuses = {h: status_json(args.nodekeeper, hosts[h].config) for h in live}
            elected = next((elected_of(s) for s in statuses.values() if elected_of(s)), None)
            victim = elected or next((host_of[n] for n in sorted(now_producing)), None)
            if victim not in hosts or len(now_producing) != 1 or live != set(hosts):
                print(f"producing now: {sorted(now_producing) or 'none'}; hosts up: {sorted(live)}; "
                      f"elected: {elected or '?'}: not one clear producer yet, looking again in 5 s", flush=True)
                next_loss = time.monotonic() + 5
                continue
            losses += 1
            print(f"\n{BOLD}host loss {losses}: host {victim} (elected; producing: "
                  f"{', '.join(sorted(now_producing))}){RESET}", flush=True)
            others = {n: u for n, u in nodes.items() if host_of[n] != victim}
            killed_at = time.time()
            killed = hosts[victim].kill()
            print(f"kill -9 of host {victim}'s session: {len(killed)} processes ({' '.join(map(str, killed))})",
                  flush=True)
            new = None
            while not stop and time.time() - killed_at < 120:
                now = producers(others)
                if now:
                    new = (time.time(), sorted(now))
                    break
                time.sleep(0.1)
            if new is None:
                print("no node of the other host produces after 120 s (see .demo/hosts/*/nodekeeper.log)",
                      flush=True)
            else:
                two, _ = sampler.overlap(killed_at, time.time())
                print(f"{BOLD}{', '.join(new[1])} produces {new[0] - killed_at:.1f} s after the host loss"
                      f"{RESET} (lease_ttl 10 s); time with two producers: {two:.1f} s", flush=True)
            survivor = next(h for h in hosts if h != victim)
            time.sleep(1.5)  # the daemon's snapshot is taken once per tick
            show_status(hosts[survivor])
            if stop:
                break
            print(f"bringing host {victim} back (supervisord -c {os.path.relpath(hosts[victim].conf)})", flush=True)
            back_at = time.time()
            hosts[victim].start()
            t = time.monotonic() + 30
            while time.monotonic() < t and not stop:
                status = status_json(args.nodekeeper, hosts[victim].config)
                if status and (status.get("cluster") or {}).get("election") == "follower":
                    break
                time.sleep(0.5)
            two, _ = sampler.overlap(back_at, time.time())
            print(f"host {victim} is back as a follower; its nodes stay passive (time with two producers "
                  f"since: {two:.1f} s)", flush=True)
            show_status(hosts[victim])
            next_loss = time.monotonic() + args.every
    finally:
        sampler.stop()
    print(f"\n{losses} host loss(es) injected; the demo keeps running (scripts/demo.sh status, scripts/demo.sh stop)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="inject a host loss every --every s")
    w.add_argument("--nodekeeper", required=True)
    w.add_argument("--supervisord", default=str(Path(sys.executable).parent / "supervisord"))
    w.add_argument("--host", action="append", required=True, help="NAME=DIR")
    w.add_argument("--node", action="append", required=True, help="NODE@HOST=REST (.../api/v0)")
    w.add_argument("--every", type=float, default=60)
    w.add_argument("--for", dest="for_s", type=float, default=0, help="seconds (0: until Ctrl-C)")
    args = parser.parse_args()
    return watch(args)


if __name__ == "__main__":
    sys.exit(main())
