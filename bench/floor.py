#!/usr/bin/env python3
"""How far a proxy's CPU per request can fall: nginx, frontdoor, and the kernel's floor, user and
kernel apart, in one run.

  python3 bench/floor.py [--frontdoor build/frontdoor] [--path /16k] [--rounds 3] [--seconds 5]
                         [--only nginx,floor-epoll,floor-uring,frontdoor,full]

The floor is bench/floor_relay.cpp (built here with g++): a relay that parses nothing and copies
bytes between a client and its own upstream connection, so it makes the same receives and sends
per request as any HTTP proxy with pooled upstreams, and almost nothing else. `floor-epoll` does
it nginx's way (edge-triggered epoll), `floor-uring` with io_uring (multishot receives into a
provided buffer ring; needs liburing-dev, skipped without it). Whatever a real proxy costs above
them is its own work; no proxy making these calls can cost less than them.

Same method as bench/cpu_split.py: each contender in turn (the order rotating every round), alone
on cpu 0, `wrk -c64` and one nginx backend on cpu 1; utime and stime of the proxy's process over
the run. nginx runs the bench's proxy config, with its master process off so one process holds
all its CPU. Reports medians, and the median of the per-round ratios to nginx with each round.
Loopback only; every process it starts is stopped by PID; bounded (rounds x contenders x
(seconds + 3)).
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import bench as B  # noqa: E402  (the harness: its configs, render, start/wait helpers)
import cpu_split as S  # noqa: E402  (the split method: backend, wrk, utime/stime)

HERE = os.path.dirname(os.path.abspath(__file__))


def build_relay(run):
    """Compile floor_relay.cpp into RUN; returns the binary and whether it has the io_uring mode."""
    binary = os.path.join(run, "floor_relay")
    source = os.path.join(HERE, "floor_relay.cpp")
    uring = os.path.exists("/usr/include/liburing.h")
    subprocess.run(["g++", "-std=c++20", "-O2", "-Wall", "-Wextra", "-o", binary, source]
                   + (["-luring"] if uring else []), check=True)
    return binary, uring


def contender_argv(name, args, run, relay):
    port, backend = str(S.PROXY_PORT), "127.0.0.1:%d" % S.BACKEND_PORT
    if name.startswith("floor-"):
        return [relay, "--listen", port, "--to", backend, "--mode", name[len("floor-"):]]
    if name == "nginx":
        conf = B.render("proxy-nginx.conf.in", os.path.join(run, "nginx-proxy.conf"),
                        {"RUN": run, "PORT": port, "UPSTREAM_SERVERS": "server %s;" % backend})
        with open(conf) as f:
            text = f.read().replace("master_process on;", "master_process off;")
        with open(conf, "w") as f:
            f.write(text)
        return ["nginx", "-p", run, "-c", conf]
    return S.proxy_argv(args.frontdoor, name == "full", run)


def one_round(argv, args, run):
    for _ in range(50):  # a ring's sockets are released after its process exits, not with it
        if B.port_free(S.PROXY_PORT):
            break
        time.sleep(0.1)
    p = B.start_server("proxy", argv, "0", run)
    try:
        B.wait_ready(p, S.PROXY_PORT, 10)
        S.wrk(1, args.path)  # warm: pools filled, first-request work done
        user0, sys0 = S.cpu_seconds(p.pid)
        requests = S.wrk(args.seconds, args.path)
        user1, sys1 = S.cpu_seconds(p.pid)
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
    return (user1 - user0) / requests * 1e6, (sys1 - sys0) / requests * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frontdoor", default=B.DEFAULT_FRONTDOOR)
    ap.add_argument("--only", default="nginx,floor-epoll,floor-uring,frontdoor,full",
                    help="contenders, in this order; the first is the one ratios are to")
    ap.add_argument("--path", default="/", help="/ (100 bytes) or /16k")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    for tool in ("g++", "nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit("error: %s is missing (apt-get install g++ nginx wrk util-linux)" % tool)
    run = tempfile.mkdtemp(prefix="fd-floor-")
    relay, has_uring = build_relay(run)
    names = [n for n in args.only.split(",") if n and (has_uring or n != "floor-uring")]
    backend = S.start_backend(run)
    figures = {n: [] for n in names}
    try:
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                user, kernel = one_round(contender_argv(name, args, run, relay), args, run)
                figures[name].append((user, kernel))
                print("round %d %-12s user %.2f  kernel %.2f  total %.2f µs/req" % (
                    r + 1, name, user, kernel, user + kernel), flush=True)
    finally:
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
    base = names[0]
    print("\n%s, %d rounds of %d s, CPU µs per request\n" % (args.path, args.rounds, args.seconds))
    print("| contender | user | kernel | total | total ÷ %s, median (rounds) |" % base)
    print("|---|---:|---:|---:|---|")
    for name in names:
        totals = [u + k for u, k in figures[name]]
        ratios = [t / (u + k) for t, (u, k) in zip(totals, figures[base])]
        print("| %s | %.2f | %.2f | %.2f | %.2f (%s) |" % (
            name, statistics.median(u for u, _ in figures[name]), statistics.median(k for _, k in figures[name]),
            statistics.median(totals), statistics.median(ratios), ", ".join("%.2f" % x for x in ratios)))


if __name__ == "__main__":
    main()
