#!/usr/bin/env python3
"""Benchmark `nodekeeper ctl status` against `supervisorctl status` and a raw curl call.

For each size N (default 10 and 500) this starts a private supervisord with N programs
`prog_NNN` (`sleep 1000000`) on a free loopback port, waits until all are RUNNING, then times,
over TCP (http://127.0.0.1:PORT/RPC2), interleaved round by round:

  * nodekeeper ctl --supervisor URL --user USER status   (password in NODEKEEPER_SUPERVISOR_PASSWORD)
  * supervisorctl -c CONF status                         (CONF's [supervisorctl] points at the URL)
  * curl: one POST of supervisor.getAllProcessInfo to /RPC2 with basic auth, output discarded,
    i.e. the floor set by supervisord itself.

Wall time is measured with time.perf_counter() around subprocess.run(). Normally run through
scripts/bench.sh, which prepares the venv and builds the binary; run this file with the venv's
Python (`.venv/bin/python scripts/bench_ctl.py --help`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
import supervisor_rpc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
USER = "bench"

GOAL_SMALL = (10, 0.10)  # at 10 programs: ctl <= 1/10 of supervisorctl
GOAL_LARGE = (500, 1.10)  # at 500 programs: ctl within 10 % of curl


@dataclass
class Tool:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    times: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class SizeResult:
    n_programs: int
    response_bytes: int | None
    tools: dict[str, Tool]


def log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def run_once(tool: Tool) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(tool.argv, env=tool.env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start, proc


def check_tool(tool: Tool, n_programs: int) -> None:
    """One untimed run with captured output: does the tool work and list every program?"""
    proc = subprocess.run(tool.argv, env=tool.env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    last = f"prog_{n_programs - 1:03d}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        tool.error = f"exit {proc.returncode}: {detail[-1] if detail else 'no output'}"
    elif tool.key != "curl" and last not in proc.stdout:
        tool.error = f"output does not list {last}"


class Supervisord:
    """A private supervisord with N sleeping programs, torn down by close()."""

    def __init__(self, base: Path, n_programs: int, supervisord: str, password: str):
        self.dir = base / f"n{n_programs}"
        self.dir.mkdir(parents=True)
        (self.dir / "logs").mkdir()
        self.n_programs = n_programs
        self.password = password
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/RPC2"
        self.conf = self.dir / "supervisord.conf"
        self.proc: subprocess.Popen | None = None
        self._write_conf()
        self.supervisord = supervisord

    def _write_conf(self) -> None:
        # stdin + stdout pipe + log file per program (stderr is redirected), plus headroom.
        needed = 3 * self.n_programs + 256
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise RuntimeError(f"{self.n_programs} programs need about {needed} file descriptors, "
                               f"but the hard limit (ulimit -Hn) is {hard}")
        minfds = max(1024, needed)
        lines = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={self.dir}/supervisord.log",
            f"pidfile={self.dir}/supervisord.pid",
            f"childlogdir={self.dir}/logs",
            f"minfds={minfds}",
            "",
            "[inet_http_server]",
            f"port=127.0.0.1:{self.port}",
            f"username={USER}",
            f"password={self.password}",
            "",
            "[supervisorctl]",
            f"serverurl=http://127.0.0.1:{self.port}",
            f"username={USER}",
            f"password={self.password}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        ]
        for i in range(self.n_programs):
            lines += [
                "",
                f"[program:prog_{i:03d}]",
                "command=sleep 1000000",
                "autostart=true",
                "autorestart=false",
                "startsecs=0",
                "redirect_stderr=true",
                f"stdout_logfile={self.dir}/logs/prog_{i:03d}.log",
            ]
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout: float) -> None:
        out = open(self.dir / "supervisord.out", "wb")
        # Own session: a Ctrl-C reaches us, and we shut supervisord down in order.
        self.proc = subprocess.Popen([self.supervisord, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        server = supervisor_rpc.proxy(self.url, USER, self.password)
        try:
            supervisor_rpc.wait_running(server, self.n_programs, timeout)
        except RuntimeError as e:
            if self.proc.poll() is not None:
                tail = (self.dir / "supervisord.out").read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"supervisord exited with {self.proc.returncode}: {' | '.join(tail)}") from e
            raise

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            supervisor_rpc.proxy(self.url, USER, self.password).supervisor.shutdown()
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - teardown must not raise; escalate instead
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def median(tool: Tool) -> float | None:
    return statistics.median(tool.times) if tool.times and tool.error is None else None


def bench_size(args, base: Path, n_programs: int, password: str) -> SizeResult:
    sv = Supervisord(base, n_programs, args.supervisord, password)
    try:
        log(f"{n_programs} programs: starting supervisord on 127.0.0.1:{sv.port}")
        t0 = time.perf_counter()
        sv.start(timeout=20 + n_programs * 0.1)
        log(f"{n_programs} programs: all RUNNING after {time.perf_counter() - t0:.1f} s")

        request = base / "getAllProcessInfo.xml"
        request.write_text("<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getAllProcessInfo"
                           "</methodName><params/></methodCall>")
        # curl reads the credentials from a private config file, not from its argv.
        curlrc = base / f"curlrc-{n_programs}"
        fd = os.open(curlrc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'user = "{USER}:{password}"\n')

        tools: dict[str, Tool] = {}
        if args.ctl:
            tools["ctl"] = Tool("ctl", "nodekeeper ctl status",
                                [args.ctl, "ctl", "--supervisor", sv.url, "--user", USER, "status"],
                                env={**os.environ, "NODEKEEPER_SUPERVISOR_PASSWORD": password})
        tools["supervisorctl"] = Tool("supervisorctl", "supervisorctl status",
                                      [args.supervisorctl, "-c", str(sv.conf), "status"])
        tools["curl"] = Tool("curl", "curl getAllProcessInfo (floor)",
                             [args.curl, "-sS", "--fail", "-K", str(curlrc), "-o", "/dev/null",
                              "-H", "Content-Type: text/xml", "--data-binary", f"@{request}", sv.url])

        # Response size, and a sanity check of every tool's output.
        size = subprocess.run([args.curl, "-sS", "--fail", "-K", str(curlrc), "-o", "/dev/null",
                               "-w", "%{size_download}", "-H", "Content-Type: text/xml",
                               "--data-binary", f"@{request}", sv.url],
                              capture_output=True, text=True)
        response_bytes = int(size.stdout) if size.returncode == 0 and size.stdout.isdigit() else None
        for tool in tools.values():
            check_tool(tool, n_programs)
            if tool.error:
                log(f"{n_programs} programs: {tool.label} does not work ({tool.error}); not measured")

        live = [t for t in tools.values() if t.error is None]
        for _ in range(args.warmup):
            for tool in live:
                run_once(tool)
        for round_no in range(args.runs):
            # Rotate the order every round so no tool always runs first (e.g. after a quiet gap).
            k = round_no % len(live) if live else 0
            for tool in live[k:] + live[:k]:
                elapsed, proc = run_once(tool)
                if proc.returncode != 0:
                    tool.error = f"exit {proc.returncode} in run {round_no + 1}: " \
                                 f"{proc.stderr.decode(errors='replace').strip()[-200:]}"
                    log(f"{n_programs} programs: {tool.label} failed ({tool.error})")
                    break
                tool.times.append(elapsed)
            live = [t for t in live if t.error is None]
        return SizeResult(n_programs, response_bytes, tools)
    finally:
        sv.close()


def print_table(results: list[SizeResult], args) -> list[str]:
    """Print the figures and the goals; return the goals that are not met."""
    print()
    print(f"nodekeeper ctl status vs supervisorctl status vs raw curl, over TCP to supervisord "
          f"{args.supervisor_version}")
    print(f"median of {args.runs} runs per tool (interleaved; {args.warmup} warm-up run(s) each), "
          f"wall time incl. process start; {os.cpu_count()} CPUs, {platform.platform(terse=True)}")
    print(f"load average (1 min) at start {args.load_start:.2f}, at end {os.getloadavg()[0]:.2f}: "
          f"other work on the machine widens the spread")
    print()
    header = (f"{'programs':>8}  {'response':>9}  {'tool':<30}  {'median ms':>9}  {'min ms':>7}  "
              f"{'max ms':>7}  {'ctl/supervisorctl':>17}  {'ctl/curl':>8}")
    print(header)
    print("-" * len(header))
    not_met: list[str] = []
    for r in results:
        ctl = median(r.tools["ctl"]) if "ctl" in r.tools else None
        sctl = median(r.tools["supervisorctl"])
        curl = median(r.tools["curl"])
        first = True
        for key in ("ctl", "supervisorctl", "curl"):
            tool = r.tools.get(key)
            if tool is None:
                tool = Tool(key, "nodekeeper ctl status", [], error="not built")
            med = median(tool)
            size = f"{r.response_bytes / 1024:.0f} KiB" if (first and r.response_bytes) else ""
            ratio_s = ratio_c = ""
            if first:
                ratio_s = f"{ctl / sctl:.3f}" if ctl and sctl else "n/a"
                ratio_c = f"{ctl / curl:.2f}" if ctl and curl else "n/a"
            if tool.error or med is None:
                cells = f"{'n/a':>9}  {'':>7}  {'':>7}"
            else:
                cells = f"{ms(med):>9}  {ms(min(tool.times)):>7}  {ms(max(tool.times)):>7}"
            print(f"{r.n_programs if first else '':>8}  {size:>9}  {tool.label:<30}  {cells}  "
                  f"{ratio_s:>17}  {ratio_c:>8}")
            first = False
        print()

    print("goals:")
    by_size = {r.n_programs: r for r in results}
    for (n, limit), what, other in ((GOAL_SMALL, "ctl <= 1/10 of supervisorctl", "supervisorctl"),
                                    (GOAL_LARGE, "ctl within 10 % of curl", "curl")):
        r = by_size.get(n)
        if r is None:
            print(f"  {n:>3} programs: {what}: not measured (size not run)")
            continue
        ctl = median(r.tools["ctl"]) if "ctl" in r.tools else None
        base = median(r.tools[other])
        if ctl is None or base is None:
            print(f"  {n:>3} programs: {what}: not measured")
            not_met.append(f"{n} programs: {what} (not measured)")
            continue
        ratio = ctl / base
        ok = ratio <= limit
        print(f"  {n:>3} programs: {what}: ctl/{other} = {ratio:.3f} (limit {limit:.2f}) "
              f"-> {'met' if ok else 'NOT MET'}")
        if not ok:
            not_met.append(f"{n} programs: {what}")
    for r in results:
        for tool in r.tools.values():
            if tool.error:
                print(f"  note: {r.n_programs} programs: {tool.label}: {tool.error}")
    return not_met


def main() -> int:
    venv_bin = Path(sys.executable).parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 500], help="program counts (default 10 500)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per tool and size (default 15)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per tool (default 1)")
    parser.add_argument("--ctl", default=str(ROOT / "target/release/nodekeeper"),
                        help="nodekeeper binary; empty string to skip it")
    parser.add_argument("--supervisord", default=str(venv_bin / "supervisord"))
    parser.add_argument("--supervisorctl", default=str(venv_bin / "supervisorctl"))
    parser.add_argument("--curl", default=shutil.which("curl") or "curl")
    parser.add_argument("--json", help="also write the raw timings to this file")
    parser.add_argument("--workdir", help="directory for the temporary supervisords (default: a new temp dir)")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0 or any(n < 1 or n > 999 for n in args.sizes):
        parser.error("need --runs >= 1, --warmup >= 0 and sizes within 1..999")

    for exe in (args.supervisord, args.supervisorctl, args.curl):
        if not shutil.which(exe):
            print(f"error: {exe} not found", file=sys.stderr)
            return 1
    if args.ctl and not os.access(args.ctl, os.X_OK):
        log(f"nodekeeper ctl not measured: {args.ctl} does not exist (build it first)")
        args.ctl = ""
    args.supervisor_version = subprocess.run([args.supervisord, "--version"], capture_output=True,
                                             text=True).stdout.strip() or "?"

    # SIGTERM/SIGHUP unwind through the finally blocks, so no supervisord is left behind.
    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    args.load_start = os.getloadavg()[0]
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="nodekeeper-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    results: list[SizeResult] = []
    try:
        for n in args.sizes:
            results.append(bench_size(args, base, n, password))
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)

    not_met = print_table(results, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{"programs": r.n_programs, "response_bytes": r.response_bytes,
                        "tools": {k: {"label": t.label, "seconds": t.times, "error": t.error}
                                  for k, t in r.tools.items()}} for r in results], f, indent=1)
    failed = [f"{r.n_programs} programs: {t.label}" for r in results for t in r.tools.values() if t.error]
    if "ctl" not in (results[0].tools if results else {}):
        failed.append("nodekeeper ctl not available")
    if failed:
        print(f"\nerror: not everything could be measured: {'; '.join(failed)}", file=sys.stderr)
        return 1
    if not_met:
        print(f"\nnote: goal(s) not met: {'; '.join(not_met)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
