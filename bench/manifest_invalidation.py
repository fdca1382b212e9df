#!/usr/bin/env python3
"""How fast a manifest change reaches running daemons: `frontdoor manifests put` against a private
PostgreSQL, then every daemon polled (keep-alive, loopback) until it routes to the new upstream.

  python3 bench/manifest_invalidation.py [--bin build/frontdoor] [--rounds 100] [--daemons 2] [--redis]

Reports p50/p99/max of the time until the change was seen on every daemon, counted two ways: from
the CLI's start (an upper bound: it includes the CLI starting and connecting) and from its exit (a
lower bound: the transaction committed and NOTIFY was sent before it exits). Bounded: at most
--rounds puts, each waiting at most 2 s. Everything on loopback; every process is stopped by PID."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from fd_config import make_config, manifest, to_yaml  # noqa: E402
from fd_daemon import Frontdoor  # noqa: E402
from fd_postgres import PostgresServer  # noqa: E402
from fd_redis import RedisServer  # noqa: E402
from fd_upstream import ScriptedUpstream  # noqa: E402
from fd_wire import Client  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "frontdoor"))
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--daemons", type=int, default=2)
    ap.add_argument("--redis", action="store_true", help="give the daemons and the CLI a Redis too")
    args = ap.parse_args()
    os.environ["FRONTDOOR_BIN"] = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="fd-inval-")
    pg = PostgresServer().start()
    redis = RedisServer().start() if args.redis else None
    ups = [ScriptedUpstream("a"), ScriptedUpstream("b")]
    daemons = []
    try:
        cfg = make_config([], postgres={"dsn": pg.dsn})
        cfg["logging"]["level"] = "warn"
        if redis:
            cfg["redis"] = {"address": redis.address}
        cfg_path = os.path.join(work, "cli.yaml")
        with open(cfg_path, "w") as f:
            f.write(to_yaml(cfg))

        def put(upstream):
            path = os.path.join(work, "put.yaml")
            with open(path, "w") as f:
                f.write(to_yaml({"manifests": [manifest("shop", "cart", [upstream])]}))
            r = subprocess.run([args.bin, "manifests", "put", path, "-c", cfg_path], capture_output=True, text=True,
                               timeout=20)
            if r.returncode != 0:
                raise SystemExit("put failed: " + r.stderr)

        subprocess.run([args.bin, "manifests", "migrate", "-c", cfg_path], check=True, capture_output=True, timeout=20)
        put(ups[0])
        for i in range(args.daemons):
            daemons.append(Frontdoor(work, "fd%d" % i).start(cfg))
        clients = [Client(d.port, 5) for d in daemons]
        for c in clients:
            assert c.request("GET", "/shop/cart/x").headers.get("X-Upstream") == "a"
        from_start, from_exit = [], []
        for n in range(args.rounds):
            target = ups[(n + 1) % 2]
            t0 = time.monotonic()
            put(target)
            t1 = time.monotonic()
            pending = set(range(len(clients)))
            deadline = t1 + 2.0
            while pending and time.monotonic() < deadline:
                for i in list(pending):
                    if clients[i].request("GET", "/shop/cart/x").headers.get("X-Upstream") == target.name:
                        pending.discard(i)
            if pending:
                raise SystemExit("round %d: the change did not reach daemon(s) %s within 2 s" % (n, sorted(pending)))
            seen = time.monotonic()
            from_start.append((seen - t0) * 1000)
            from_exit.append((seen - t1) * 1000)
        print("manifest invalidation, %d puts, %d daemon(s)%s, ms until every daemon routes by the new version:"
              % (args.rounds, args.daemons, " with Redis" if redis else ""))
        for name, v in (("from the CLI's start", from_start), ("from the CLI's exit", from_exit)):
            print("  %-22s p50 %6.1f  p99 %6.1f  max %6.1f  mean %6.1f" %
                  (name, pct(v, 50), pct(v, 99), max(v), statistics.mean(v)))
    finally:
        for d in daemons:
            d.stop()
        for u in ups:
            u.stop()
        if redis:
            redis.stop()
            redis.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
