#!/usr/bin/env python3
"""Writes a synthetic nodekeeper restart log for the `log analyze` benchmark.

    generate.py OUT.csv [--rows N] [--nodes K] [--seed S]

Deterministic for a given seed. Rows are in time order, as nodekeeper writes them, and mix every
shape the analysis meets: stop+start pairs, lone starts (crashes, found stopped), retries of a
failed start, planned restarts, unknown uptimes, and `lag (...)` reasons, which contain commas and
are therefore quoted. About 100 bytes per row: 10 million rows are about 1 GB.
"""

import argparse
import random
import time

HEADER = ("node name,timestamp,action,uptime,reason,program,height,"
          "reference height,supervisor state,exit status\n")

# (weight, reason template, shape): "pair" = stop then start, "start" = a lone start.
REASONS = [
    (30, "stale tip (no new block for {s} s)", "pair"),
    (28, "lag", "pair"),
    (10, "hung (3 failed REST calls in a row)", "pair"),
    (5, "bootstrap timeout (bootstrapping for {s} s)", "pair"),
    (10, "crashed (EXITED)", "start"),
    (2, "crashed (FATAL)", "start"),
    (6, "operator request", "pair"),
    (3, "stopped", "start"),
    (2, "all nodes down", "start"),
    (4, "schedule refresh", "pair"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    nodes = [f"node{index:02d}" for index in range(1, args.nodes + 1)]
    # One entry per unit of weight: a uniform pick is a weighted pick.
    table = [(template, shape) for weight, template, shape in REASONS for _ in range(weight)]
    rand = rng.random
    # Start 2024-01-01; on average 9.5 s between restarts, so 10 M rows cover about 3 years.
    now_ms = 1_704_067_200_000
    height = 1_000_000
    hour_cache = [None, ""]
    n_rows = 0
    out = open(args.out, "w", buffering=1 << 22)
    out.write(HEADER)
    write = out.write

    def stamp(ms):
        hour = ms // 3_600_000
        if hour_cache[0] != hour:
            hour_cache[0] = hour
            hour_cache[1] = time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * 3600))
        rest = ms - hour * 3_600_000
        return f"{hour_cache[1]}{rest // 60_000:02d}:{rest // 1000 % 60:02d}.{rest % 1000:03d}Z"

    while n_rows < args.rows:
        now_ms += 1 + int(rand() * 19_000)
        height += 1
        node = nodes[int(rand() * len(nodes))]
        template, shape = table[int(rand() * len(table))]
        if template == "lag":
            behind = 8 + int(rand() * 112)
            reason = f'"lag (height {height - behind}, reference {height}, {behind} behind)"'
        elif "{s}" in template:
            reason = template.replace("{s}", str(60 + int(rand() * 840)))
        else:
            reason = template
        if shape == "pair":
            uptime = "" if rand() < 0.05 else str(int(rand() * 200_000))
            tail = f",{reason},{node},{height - 9},{height},RUNNING,\n"
            write(f"{node},{stamp(now_ms)},stop,{uptime}{tail}")
            now_ms += 5 + int(rand() * 2_000)
            write(f"{node},{stamp(now_ms)},start,{tail}")
            n_rows += 2
            if rand() < 0.03:
                now_ms += 1_000 + int(rand() * 4_000)
                write(f"{node},{stamp(now_ms)},start,,retry after a failed start,{node},,,FATAL,1\n")
                n_rows += 1
        else:
            state = "STOPPED" if template == "stopped" else "EXITED"
            write(f"{node},{stamp(now_ms)},start,,{reason},{node},,,{state},{int(rand() * 3)}\n")
            n_rows += 1
    out.close()


if __name__ == "__main__":
    main()
