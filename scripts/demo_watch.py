#!/usr/bin/env python3
"""The fault loop of `scripts/demo.sh watch`: every ~20 s, inject the next fault (crash, stuck,
hang, lag 20, bootstrap, round-robin) into the next simulated node, say what nodekeeper should do,
wait for the restart-log row that shows it did, then show `nodekeeper status` and the end of the
restart log. Runs until Ctrl-C or --for seconds; a fault still pending at the end is cleared.

Run by scripts/demo.sh, which passes the demo's addresses; by hand:

    .venv/bin/python scripts/demo_watch.py --nodekeeper target/release/nodekeeper \\
        --config .demo/nodekeeper.toml --api http://127.0.0.1:PORT --restart-log .demo/restarts.csv \\
        --node node1=http://127.0.0.1:PORT1 --node node2=... [--for 90]
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.dont_write_bytecode = True

# (fault as typed, request body, what the simulator does, what nodekeeper should do)
FAULTS = [
    ("crash", {"fault": "crash"},
     "the node process exits with status 1",
     "supervisord shows it EXITED; nodekeeper starts it at its next tick (within 1 s)"),
    ("stuck", {"fault": "stuck"},
     "its tip stops growing while it still reports Running",
     "restart for a stale tip once the tip has not moved for tip_timeout (or is older; see the config)"),
    ("hang", {"fault": "hang"},
     "its API accepts requests and never answers",
     "restart as hung once its API has not answered for hang_timeout (plus at most a quarter of it)"),
    ("lag 20", {"fault": "lag", "blocks": 20},
     "its tip is 20 blocks behind its siblings",
     "restart for lag: more than tip_diff_threshold (12) blocks behind the best node"),
    ("bootstrap", {"fault": "bootstrap"},
     "it goes back to Bootstrapping and stays there",
     "restart once bootstrapping for longer than bootstrap_timeout (30 s)"),
]

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def parse_ts(text: str) -> float:
    """RFC 3339 (restart log, status snapshot) -> Unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Demo:
    def __init__(self, args):
        self.args = args
        self.nodes: list[tuple[str, str]] = []
        for spec in args.node:
            name, _, url = spec.partition("=")
            if not url:
                raise SystemExit(f"error: --node wants NAME=URL, got {spec!r}")
            self.nodes.append((name, url.rstrip("/")))
        self.started = time.monotonic()
        self.deadline = None if not args.duration else self.started + args.duration
        self.pending: tuple[str, str] | None = None  # (node, sim url) with a fault not yet handled
        self.injected = 0
        self.handled = 0

    # -- helpers --------------------------------------------------------------------------------

    def clock(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return f"{elapsed // 60:02d}:{elapsed % 60:02d}"

    def say(self, text: str) -> None:
        print(f"[{self.clock()}] {text}", flush=True)

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def sleep(self, seconds: float) -> bool:
        """Sleep, but not past the deadline; False when the deadline was reached."""
        seconds = min(seconds, self.left())
        if seconds > 0:
            time.sleep(seconds)
        return self.left() > 0

    def status(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.args.api}/v1/status", timeout=2) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    def node_line(self, name: str) -> dict | None:
        status = self.status()
        if not status:
            return None
        return next((n for n in status["nodes"] if n["name"] == name), None)

    def rows(self) -> list[dict]:
        try:
            with open(self.args.restart_log, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        except FileNotFoundError:
            return []

    def rows_of(self, name: str) -> list[dict]:
        return [r for r in self.rows() if r["node name"] == name]

    def post_fault(self, url: str, body: dict) -> None:
        request = urllib.request.Request(f"{url}/sim/fault", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as r:
            r.read()

    def wait(self, what, condition, timeout: float, step: float = 0.2):
        end = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() >= end or self.left() <= 0:
                return None
            time.sleep(step)

    def idle(self, name: str) -> bool:
        line = self.node_line(name)
        return bool(line and line["program_state"] == "RUNNING" and not line["busy"]
                    and line["node_state"] == "Running")

    def show(self) -> None:
        print(f"\n$ nodekeeper status -c {self.args.config_shown}", flush=True)
        subprocess.run([self.args.nodekeeper, "-c", self.args.config, "status"], check=False)
        rows = Path(self.args.restart_log).read_text(encoding="utf-8").splitlines() \
            if Path(self.args.restart_log).exists() else []
        print(f"\n$ tail -n 6 {self.args.restart_log_shown}   ({max(len(rows) - 1, 0)} rows)", flush=True)
        for line in rows[-6:]:
            print(line)
        print(flush=True)

    # -- the loop -------------------------------------------------------------------------------

    def one(self, index: int) -> None:
        typed, body, does, expect = FAULTS[index % len(FAULTS)]
        name, url = self.nodes[index % len(self.nodes)]
        if not self.wait(f"{name} idle", lambda: self.idle(name), 30):
            self.say(f"{name} is not RUNNING and idle; skipping it this round")
            return
        before = len(self.rows_of(name))
        print(f"{BOLD}=== [{self.clock()}] fault {index + 1}: {typed} -> {name} ==={RESET}", flush=True)
        injected = time.monotonic()
        self.post_fault(url, body)
        self.pending = (name, url) if typed != "crash" else None
        self.injected += 1
        print(f"injected: {does}\n          (POST {url}/sim/fault {json.dumps(body)})")
        print(f"expected: {expect}", flush=True)
        new = self.wait("a restart-log row", lambda: self.rows_of(name)[before:], 75)
        if not new:
            if self.left() > 0:
                self.say(f"no restart-log row for {name} within 75 s; clearing the fault")
                self.clear()
            return
        row = new[0]
        self.pending = None
        self.handled += 1
        self.say(f"{BOLD}detected after {time.monotonic() - injected:.1f} s{RESET}: restart log: {name} "
                 f"{row['action']} ({row['reason']})")
        # The node is back once a snapshot taken after its start row shows it RUNNING, idle and
        # Running (the snapshot of the tick that decided still shows the node as it was).
        start = row if row["action"] == "start" else self.wait(
            "the start row", lambda: next((r for r in self.rows_of(name)[before:] if r["action"] == "start"), None), 30)
        if start:
            since = parse_ts(start["timestamp"])

            def back() -> bool:
                status = self.status()
                return bool(status and parse_ts(status["taken_at"]) >= int(since) + 1 and self.idle(name))

            if self.wait(f"{name} back", back, 30):
                self.say(f"{name} is RUNNING and Running again, {time.monotonic() - injected:.1f} s after the fault")
        self.show()

    def clear(self) -> None:
        if self.pending is None:
            return
        name, url = self.pending
        self.pending = None
        try:
            self.post_fault(url, {"fault": "none"})
            print(f"cleared the pending fault on {name}", flush=True)
        except OSError:
            pass

    def run(self) -> None:
        if self.status() is None:
            raise SystemExit(f"error: the nodekeeper API at {self.args.api} does not answer "
                             f"(is the demo running? scripts/demo.sh start)")
        span = "until Ctrl-C" if self.deadline is None else f"for {self.args.duration:g} s"
        print(f"Watching {span}: a fault every ~{self.args.interval:g} s, in turn "
              f"{', '.join(f[0] for f in FAULTS)}, into {', '.join(n for n, _ in self.nodes)}.")
        print(f"nodekeeper's own log: {self.args.log_shown}\n", flush=True)
        index = 0
        while self.left() > 0:
            began = time.monotonic()
            self.one(index)
            index += 1
            pause = max(began + self.args.interval - time.monotonic(), 3)
            if self.left() > pause:
                self.say(f"next fault in {pause:.0f} s (Ctrl-C stops watching; the demo keeps running)")
            if not self.sleep(pause):
                break

    def summary(self) -> None:
        self.clear()
        print(f"\nInjected {self.injected} fault(s); nodekeeper handled {self.handled} of them "
              f"(see {self.args.restart_log_shown}).")
        print("The demo keeps running: scripts/demo.sh status | watch | stop", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodekeeper", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--api", required=True, help="http://127.0.0.1:PORT of `nodekeeper run`")
    parser.add_argument("--restart-log", required=True)
    parser.add_argument("--log", default="", help="the daemon's log file, for the hint")
    parser.add_argument("--node", action="append", required=True, help="NAME=SIM_URL, in order")
    parser.add_argument("--for", dest="duration", type=float, default=0, help="seconds; 0: until Ctrl-C")
    parser.add_argument("--interval", type=float, default=20, help="seconds between faults (default 20)")
    args = parser.parse_args()
    cwd = Path.cwd()

    def shown(path: str) -> str:
        try:
            return str(Path(path).resolve().relative_to(cwd))
        except ValueError:
            return path

    args.config_shown = shown(args.config)
    args.restart_log_shown = shown(args.restart_log)
    args.log_shown = shown(args.log) if args.log else "-"

    def _terminate(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    demo = Demo(args)
    try:
        demo.run()
    except KeyboardInterrupt:
        print("\nstopped watching", flush=True)
    finally:
        demo.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
