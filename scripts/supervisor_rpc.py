#!/usr/bin/env python3
"""Tiny supervisord XML-RPC helpers for the scripts (demo.sh, bench.sh).

Run with the venv's Python (it needs the `supervisor` package for unix-socket URLs):

    .venv/bin/python scripts/supervisor_rpc.py wait-running --url unix:///path/supervisor.sock \
        --user nodekeeper --password-file .demo/supervisor.password --count 3 --timeout 20

The password is read from a file or from $SUPERVISOR_PASSWORD, never from the command line, so it
does not show up in `ps`.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import time
import xmlrpc.client

# Process states in which a program will not reach RUNNING without outside help.
_DEAD_STATES = {"FATAL", "EXITED", "STOPPED", "UNKNOWN"}


class _FreshTransport(xmlrpc.client.Transport):
    """HTTP transport that opens a new TCP connection per call.

    supervisord never sets TCP_NODELAY and writes in 4 KiB chunks, so a reused connection stalls
    ~40 ms on every response above 4 KiB (Nagle + delayed ACK). A fresh connection does not.
    """

    def make_connection(self, host):
        self.close()
        return super().make_connection(host)


def proxy(url: str, user: str | None, password: str | None) -> xmlrpc.client.ServerProxy:
    """ServerProxy for an http://host:port/RPC2 or unix:///path.sock URL, with basic auth."""
    if url.startswith("unix://"):
        from supervisor.xmlrpc import SupervisorTransport  # only in the venv

        transport = SupervisorTransport(user, password, url)
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    if user is not None:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{user}:{password or ''}@{rest}"
    return xmlrpc.client.ServerProxy(url, transport=_FreshTransport())


def read_password(path: str | None) -> str | None:
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return os.environ.get("SUPERVISOR_PASSWORD")


def wait_running(server, count: int | None, timeout: float, names: list[str] | None = None,
                 quiet: bool = False) -> list[dict]:
    """Poll getAllProcessInfo until every expected program is RUNNING.

    `count`: how many programs must exist (None: whatever is configured); `names`: the programs
    that must be RUNNING (None: all). Fails fast when one is FATAL/EXITED, or at `timeout` seconds,
    raising RuntimeError with the states seen last.
    """
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    infos: list[dict] = []
    delay = 0.05
    while True:
        try:
            infos = server.supervisor.getAllProcessInfo()
            last_error = ""
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault,
                xmlrpc.client.ProtocolError) as e:
            infos, last_error = [], f"{type(e).__name__}: {e}"
            if isinstance(e, xmlrpc.client.ProtocolError) and e.errcode == 401:
                raise RuntimeError("supervisord rejected the credentials (HTTP 401)") from e
        watched = [i for i in infos if names is None or i["name"] in names]
        if infos:
            dead = [i for i in watched if i["statename"] in _DEAD_STATES and i["start"] != 0]
            if dead:
                raise RuntimeError("; ".join(
                    f"{i['name']} is {i['statename']}"
                    + (f" ({i['spawnerr'] or i['description']})" if (i["spawnerr"] or i["description"]) else "")
                    + f", log: {i['stdout_logfile']}" for i in dead))
            enough = (count is None or len(infos) >= count) and (names is None or len(watched) == len(names))
            if enough and all(i["statename"] == "RUNNING" for i in watched):
                return infos
        if time.monotonic() >= deadline:
            if last_error:
                raise RuntimeError(f"supervisord not answering after {timeout:g} s ({last_error})")
            counts: dict[str, int] = {}
            for i in watched:
                counts[i["statename"]] = counts.get(i["statename"], 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no programs"
            raise RuntimeError(f"programs not all RUNNING after {timeout:g} s: {summary}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait-running", help="wait until all (or --count / named) programs are RUNNING")
    w.add_argument("--url", required=True, help="http://127.0.0.1:PORT/RPC2 or unix:///path.sock")
    w.add_argument("--user")
    w.add_argument("--password-file")
    w.add_argument("--count", type=int, help="number of programs expected")
    w.add_argument("--timeout", type=float, default=20.0)
    w.add_argument("names", nargs="*", help="programs that must be RUNNING (default: all)")
    args = parser.parse_args()

    server = proxy(args.url, args.user, read_password(args.password_file))
    try:
        start = time.monotonic()
        infos = wait_running(server, args.count, args.timeout, args.names or None)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"==> {len(infos)} program(s) RUNNING after {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
