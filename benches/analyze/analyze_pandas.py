#!/usr/bin/env python3
"""The core of `nodekeeper log analyze --json`, computed with pandas: the benchmark's reference.

    analyze_pandas.py LOG.csv

Reads a nodekeeper restart log and prints JSON with restarts, failures and planned restarts per
node, MTBF and mean uptime at failure per node, restarts per reason kind and per UTC day and node.
The definitions are nodekeeper's (src/analyze/mod.rs):

- a restart is a stop row, or a start row unless the node's previous row is a stop or it is a
  `retry after a failed start` following another start;
- a reason's kind is its text before " (";
- planned kinds (case-insensitive): operator request, stopped, leader logs, schedule refresh,
  config change, and the empty reason; every other restart is a failure;
- MTBF = (last failure - first failure) / (failures - 1); mean uptime at failure = mean of the
  uptime cell of failure stops that have one.

This is written the way one would in a notebook: vectorised pandas, no Python loop over rows.
"""

import json
import sys

import pandas as pd

PLANNED = ["operator request", "stopped", "leader logs", "schedule refresh", "config change", ""]
RETRY = "retry after a failed start"
MS_PER_DAY = 86_400_000


def analyze(path):
    df = pd.read_csv(
        path,
        usecols=[0, 1, 2, 3, 4],
        header=0,
        names=["node", "timestamp", "action", "uptime", "reason"],
        dtype={"node": str, "timestamp": str, "action": "category", "reason": str},
        keep_default_na=False,
        na_values={"uptime": [""]},
    )
    times = pd.to_datetime(df["timestamp"], format="ISO8601", utc=True)
    df["ms"] = times.dt.as_unit("ms").astype("int64")
    df["kind"] = df["reason"].str.split(" (", n=1, regex=False).str[0].str.strip()
    if not df["ms"].is_monotonic_increasing:
        df = df.sort_values(["node", "ms"], kind="stable")

    previous = df.groupby("node", sort=False)["action"].shift()
    is_start = df["action"] == "start"
    begins = ~is_start | previous.isna() | ((previous == "start") & (df["kind"] != RETRY))
    events = df[begins]
    planned = events["kind"].str.lower().isin(PLANNED)
    failures = events[~planned]

    restarts = events.groupby("node").size()
    n_failures = failures.groupby("node").size()
    n_planned = events[planned].groupby("node").size()
    times = failures.groupby("node")["ms"]
    span = times.max() - times.min()
    mtbf = (span / (n_failures - 1)).where(n_failures >= 2) / 1000.0
    stops = failures[(failures["action"] == "stop") & failures["uptime"].notna()]
    uptime = stops.groupby("node")["uptime"].mean()

    day = events["ms"] // MS_PER_DAY
    per_day = events.groupby([day, "node"]).size()
    day_names = {
        d: pd.Timestamp(d * MS_PER_DAY, unit="ms").strftime("%Y-%m-%d")
        for d in per_day.index.get_level_values(0).unique()
    }

    def number(series, key):
        value = series.get(key)
        return None if value is None or pd.isna(value) else float(value)

    nodes = {}
    for node in sorted(restarts.index):
        nodes[node] = {
            "restarts": int(restarts.get(node, 0)),
            "failures": int(n_failures.get(node, 0)),
            "planned": int(n_planned.get(node, 0)),
            "mtbf_secs": number(mtbf, node),
            "mean_uptime_at_failure_secs": number(uptime, node),
        }
    days = {}
    for (d, node), n in per_day.items():
        days.setdefault(day_names[d], {})[node] = int(n)
    reasons = {kind: int(n) for kind, n in events["kind"].value_counts().items()}
    return {"rows": len(df), "nodes": nodes, "reasons": reasons, "days": days}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    json.dump(analyze(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
