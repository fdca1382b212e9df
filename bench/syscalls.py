#!/usr/bin/env python3
"""System calls per request, frontdoor against nginx and HAProxy, side by side: each proxy (one
worker, the bench's own configs) in front of the bench's nginx backend, `wrk -c16` for a few seconds
with a tracer attached to the proxy's processes.

  python3 bench/syscalls.py [--frontdoor build/frontdoor] [--seconds 3] [--only nginx,haproxy,frontdoor]
                            [--tracer perf|strace] [--close] [--path /16k] [--post BYTES]

Tracers: `perf` (the default where perf can open tracepoints) counts kernel tracepoints
(syscalls:sys_enter_*, and raw_syscalls:sys_exit filtered on -EAGAIN) at little cost, so the proxy
keeps its real timing; `strace -c -f` stops the proxy at every call, which changes what is ready
when (a client's next request has often arrived by the time a traced proxy reads), so its counts
can hide a receive that would find nothing. `--close` sends `Connection: close` (a connection per
request). `--post BYTES` sends POSTs with a body of that size (a request that cannot be retried: frontdoor
confirms a pooled connection open before it). Prints, per contender, the calls per request by system call (those above 0.01), and the
total. Loopback only; every process it starts is stopped by PID."""
import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import bench as B  # noqa: E402  (the harness: its configs, render, start/wait helpers)

PORTS = {"backend": 18181, "nginx": 18182, "haproxy": 18183, "frontdoor": 18184}


# The calls a proxy makes per request or per connection; perf counts each through its tracepoint.
PERF_CALLS = ["accept4", "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
              "epoll_wait", "epoll_pwait", "epoll_ctl", "getsockopt", "setsockopt", "ioctl", "fcntl", "close",
              "shutdown", "futex", "io_uring_enter", "clock_gettime", "timerfd_settime", "getpid"]


WRK_SCRIPT = []  # ["-s", a Lua script] with --post


def wrk(seconds, port, close, path):
    argv = ["wrk", "-t1", "-c16", "-d%ds" % seconds] + WRK_SCRIPT
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(argv + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def under_tracer(argv, seconds, port, close, path):
    """Runs wrk with the tracer `argv` attached (given half a second to attach); the requests served."""
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    requests = wrk(seconds, port, close, path)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(30)
    return requests


def perf_usable():
    try:
        r = subprocess.run(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_getpid", "--", "true"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and "not supported" not in r.stderr and "<not" not in r.stderr


def perf_counts(pids, seconds, port, close, path):
    out = tempfile.mktemp(prefix="fd-perf-")
    argv = ["perf", "stat", "-x,", "-o", out, "-p", ",".join(map(str, pids)),
            "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit", "--filter", "ret == -11"]
    for call in PERF_CALLS:
        argv += ["-e", "syscalls:sys_enter_" + call]
    requests = under_tracer(argv, seconds, port, close, path)
    calls = collections.Counter()
    errors = collections.Counter()
    total = 0
    with open(out) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) < 3 or not fields[0].isdigit():
                continue
            n, event = int(fields[0]), fields[2]
            if event == "raw_syscalls:sys_enter":
                total = n
            elif event == "raw_syscalls:sys_exit":
                errors["EAGAIN (any call)"] = n
            elif event.startswith("syscalls:sys_enter_"):
                calls[event[len("syscalls:sys_enter_"):]] = n
    os.unlink(out)
    calls["(other calls)"] = max(0, total - sum(calls.values()))
    return requests, calls, errors


def strace_counts(pids, seconds, port, close, path):
    out = tempfile.mktemp(prefix="fd-strace-")
    argv = ["strace", "-f", "-c", "-o", out]
    for pid in pids:
        argv += ["-p", str(pid)]
    requests = under_tracer(argv, seconds, port, close, path)
    calls = collections.Counter()
    errors = collections.Counter()
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                calls[parts[-1]] += int(parts[3])
                if len(parts) == 6:
                    errors[parts[-1]] += int(parts[4])
    os.unlink(out)
    return requests, calls, errors


def children(pid):
    pids = [pid]
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    for child in r.stdout.split():
        pids += children(int(child))
    return pids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frontdoor", default=os.path.join(B.BENCH, "..", "build", "frontdoor"))
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--only", default="nginx,haproxy,frontdoor")
    ap.add_argument("--tracer", choices=["perf", "strace"], default=None,
                    help="default: perf where it can open tracepoints, else strace")
    ap.add_argument("--close", action="store_true", help="Connection: close (a connection per request)")
    ap.add_argument("--path", default="/", help="what to ask for: / (100 bytes) or /16k (16 KiB)")
    ap.add_argument("--post", type=int, default=0, metavar="BYTES", help="POST a body of BYTES instead of a GET")
    args = ap.parse_args()
    if args.tracer is None:
        args.tracer = "perf" if perf_usable() else "strace"
    count = perf_counts if args.tracer == "perf" else strace_counts
    run = tempfile.mkdtemp(prefix="fd-syscalls-")
    os.makedirs(os.path.join(run, "tmp"), exist_ok=True)
    www = os.path.join(run, "www")
    os.makedirs(www)
    with open(os.path.join(www, "16k"), "wb") as f:
        f.write(B.BIG_BODY)
    for d in (run, www):
        os.chmod(d, 0o755)
    if args.post:
        script = os.path.join(run, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = string.rep("x", %d)\n' % args.post)
        WRK_SCRIPT[:] = ["-s", script]
    procs = []
    try:
        be = PORTS["backend"]
        conf = B.render("backend-nginx.conf.in", os.path.join(run, "backend.conf"),
                        {"RUN": run, "PORT": str(be), "WWW": www, "SMALL_BODY": B.SMALL_BODY.replace("\n", "\\n")})
        procs.append(B.start_server("backend", ["nginx", "-p", run, "-c", conf], "", run))
        B.wait_ready(procs[-1], be, 10)
        wanted = args.only.split(",")
        contenders = {}
        if "nginx" in wanted:
            conf = B.render("proxy-nginx.conf.in", os.path.join(run, "nginx.conf"),
                            {"RUN": run, "PORT": str(PORTS["nginx"]), "UPSTREAM_SERVERS": "server 127.0.0.1:%d;" % be})
            contenders["nginx"] = ["nginx", "-p", run, "-c", conf]
        if "haproxy" in wanted:
            cfg = B.render("proxy-haproxy.cfg.in", os.path.join(run, "haproxy.cfg"),
                           {"RUN": run, "PORT": str(PORTS["haproxy"]), "HAPROXY_SERVERS": "server s1 127.0.0.1:%d" % be})
            contenders["haproxy"] = ["haproxy", "-db", "-f", cfg]
        if "frontdoor" in wanted:
            contenders["frontdoor"] = [os.path.abspath(args.frontdoor), "proxy", "--listen",
                                       "127.0.0.1:%d" % PORTS["frontdoor"], "--to", "127.0.0.1:%d" % be,
                                       "--workers", "1", "--access-log", "off"]
        rows = {}
        for name, argv in contenders.items():
            p = B.start_server(name, argv, "", run)
            procs.append(p)
            B.wait_ready(p, PORTS[name], 10)
            requests, calls, errors = count(children(p.pid), args.seconds, PORTS[name], args.close, args.path)
            rows[name] = (requests, calls, errors)
        names = sorted({c for _, calls, _ in rows.values() for c, n in calls.items()})
        print("system calls per request (wrk -c16 %s%s %s, %s on the proxy)\n" %
              ("POST %d bytes " % args.post if args.post else "", args.path,
               "Connection: close" if args.close else "keep-alive",
               "perf stat on syscall tracepoints" if args.tracer == "perf" else "strace -c -f; counts only"))
        print("| system call | " + " | ".join(rows) + " |")
        print("|---|" + "---:|" * len(rows))
        for c in names:
            values = [rows[r][1][c] / rows[r][0] for r in rows]
            if max(values) < 0.01:
                continue
            cells = []
            for r in rows:
                n = rows[r][1][c] / rows[r][0]
                e = rows[r][2][c] / rows[r][0]
                cells.append("%.2f" % n + (" (%.2f EAGAIN/err)" % e if e >= 0.01 else ""))
            print("| %s | %s |" % (c, " | ".join(cells)))
        if args.tracer == "perf":
            print("| EAGAIN (any call) | " + " | ".join("%.2f" % (rows[r][2]["EAGAIN (any call)"] / rows[r][0])
                                                       for r in rows) + " |")
        print("| **total** | " + " | ".join("**%.2f**" % (sum(rows[r][1].values()) / rows[r][0]) for r in rows) + " |")
        print("| requests traced | " + " | ".join(str(rows[r][0]) for r in rows) + " |")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
