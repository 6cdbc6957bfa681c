#!/usr/bin/env python3
"""Times `nodekeeper log analyze --json` and analyze_pandas.py on the same log, checks that they
agree, and prints both timings and the ratio. Run through scripts/bench_analyze.sh, which builds,
installs pandas and generates the log.

    bench.py --log LOG --nodekeeper BIN [--runs 3] [--pandas-runs 1] [--json OUT]

Timings are wall-clock times of whole processes (start-up, reading, output), median of the runs,
with the file in the page cache (it is read once first). Exit status 1 if the two disagree.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GOAL_SECS = 2.0
GOAL_RATIO = 5.0


def timed(command, runs):
    """Runs command `runs` times; returns (median seconds, all seconds, stdout of the last run)."""
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"error: {' '.join(command)} exited {done.returncode}: "
                     f"{done.stderr.decode(errors='replace')[-2000:]}")
        out = done.stdout
    return statistics.median(times), times, out


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def compare(ours, theirs):
    """The differences between nodekeeper's report and pandas', as lines."""
    problems = []
    our_nodes = {n["node"]: n for n in ours["nodes"]}
    if sorted(our_nodes) != sorted(theirs["nodes"]):
        problems.append(f"nodes: {sorted(our_nodes)} vs {sorted(theirs['nodes'])}")
    for name, expected in theirs["nodes"].items():
        got = our_nodes.get(name, {})
        for key in ["restarts", "failures", "planned"]:
            if got.get(key) != expected[key]:
                problems.append(f"{name} {key}: {got.get(key)} vs {expected[key]}")
        for key in ["mtbf_secs", "mean_uptime_at_failure_secs"]:
            if not close(got.get(key), expected[key]):
                problems.append(f"{name} {key}: {got.get(key)} vs {expected[key]}")
    our_reasons = {r["reason"]: r["restarts"] for r in ours["reasons"]}
    if our_reasons != theirs["reasons"]:
        problems.append(f"reasons: {our_reasons} vs {theirs['reasons']}")
    our_days = {d["day"]: d["nodes"] for d in ours["days"]}
    if our_days != theirs["days"]:
        differing = [d for d in set(our_days) | set(theirs["days"])
                     if our_days.get(d) != theirs["days"].get(d)]
        problems.append(f"days: {len(differing)} differ, e.g. {sorted(differing)[:3]}")
    n_rows = sum(i["rows"] for i in ours["inputs"])
    if n_rows != theirs["rows"]:
        problems.append(f"rows: {n_rows} vs {theirs['rows']}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True)
    parser.add_argument("--nodekeeper", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pandas-runs", type=int, default=1)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    size = os.path.getsize(args.log)
    # Into the page cache, so that both read from memory.
    with open(args.log, "rb") as f:
        while f.read(1 << 24):
            pass

    ours_cmd = [args.nodekeeper, "log", "analyze", "--json", args.log]
    pandas_cmd = [sys.executable, os.path.join(HERE, "analyze_pandas.py"), args.log]
    ours_secs, ours_all, ours_out = timed(ours_cmd, args.runs)
    pandas_secs, pandas_all, pandas_out = timed(pandas_cmd, args.pandas_runs)
    ours, theirs = json.loads(ours_out), json.loads(pandas_out)
    problems = compare(ours, theirs)

    n_rows = theirs["rows"]
    ratio = pandas_secs / ours_secs
    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"log: {args.log} ({n_rows:,} rows, {size / 1e9:.2f} GB); {cpus} CPUs, load {load:.1f}")
    print(f"{'':28}{'median':>9}  runs")
    print(f"{'nodekeeper log analyze':28}{ours_secs:8.2f}s  "
          + " ".join(f"{t:.2f}" for t in ours_all))
    print(f"{'pandas':28}{pandas_secs:8.2f}s  " + " ".join(f"{t:.2f}" for t in pandas_all))
    print(f"ratio (pandas / nodekeeper): {ratio:.1f}x")
    print(f"goal <= {GOAL_SECS:.0f} s: {'met' if ours_secs <= GOAL_SECS else 'MISSED'}; "
          f"goal >= {GOAL_RATIO:.0f}x pandas: {'met' if ratio >= GOAL_RATIO else 'MISSED'}")
    if problems:
        print("DISAGREE:")
        for line in problems[:20]:
            print(f"  {line}")
    else:
        print(f"agree: {len(theirs['nodes'])} nodes (restarts, failures, planned, MTBF, uptime), "
              f"{len(theirs['reasons'])} reasons, {len(theirs['days'])} days")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": n_rows, "bytes": size, "nodekeeper_secs": ours_all,
                       "pandas_secs": pandas_all, "ratio": ratio, "agree": not problems,
                       "cpus": cpus, "load": load}, f, indent=1)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
