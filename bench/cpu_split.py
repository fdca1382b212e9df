#!/usr/bin/env python3
"""User and kernel CPU per request of two frontdoor binaries, A/B, alternated round by round.

  python3 bench/cpu_split.py --before /tmp/frontdoor-old [--after build/frontdoor] [--full]
                             [--path /16k] [--rounds 5] [--seconds 6]

The whole-process CPU per request (bench/run.sh) is 80-85 % kernel, and on a shared VM the
kernel's share moves with the neighbours (steal, softirq) by more than a user-space change
moves the total: a 20 % saving in user space is 3 % of the total, lost in a 15 % spread. This
splits the figure: utime and stime of the proxy (/proc/PID/stat) over a `wrk -c64` run, the
proxy alone on cpu 0 and wrk and one nginx backend (the bench's own config) on cpu 1, as in
run.sh's split layout. User time per request is steady within a few % between rounds; report the
median of the per-round after ÷ before ratios, user and kernel apart.

`--full`: both run bench/conf/frontdoor-full.yaml.in (every stage on), else `frontdoor proxy`.
Loopback only; every process it starts is stopped by PID; bounded (rounds x 2 x (seconds + 2)).
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import bench as B  # noqa: E402  (the harness: its configs, render, start/wait helpers)

BACKEND_PORT, PROXY_PORT = 18381, 18384


def proxy_argv(binary, full, run):
    if not full:
        return [binary, "proxy", "--listen", "127.0.0.1:%d" % PROXY_PORT, "--to", "127.0.0.1:%d" % BACKEND_PORT,
                "--workers", "1", "--access-log", "off"]
    path = os.path.join(run, "full.yaml")
    with open(os.path.join(B.CONF, "frontdoor-full.yaml.in")) as f:
        text = f.read().replace("@PORT@", str(PROXY_PORT))
    # The full config names the bench's two backends: both become the one backend here.
    text = re.sub(r"127\.0\.0\.1:181\d\d", "127.0.0.1:%d" % BACKEND_PORT, text)
    with open(path, "w") as f:
        f.write(text)
    return [binary, "run", "-c", path]


def cpu_seconds(pid):
    """utime and stime of the process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def wrk(seconds, path):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", "-d%ds" % seconds,
                          "http://127.0.0.1:%d%s" % (PROXY_PORT, path)],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def one_round(binary, args, run):
    p = B.start_server("proxy", proxy_argv(binary, args.full, run), "0", run)
    try:
        B.wait_ready(p, PROXY_PORT, 10)
        wrk(1, args.path)  # warm: pools filled, first-request work done
        user0, sys0 = cpu_seconds(p.pid)
        requests = wrk(args.seconds, args.path)
        user1, sys1 = cpu_seconds(p.pid)
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
    return (user1 - user0) / requests * 1e6, (sys1 - sys0) / requests * 1e6


def start_backend(run):
    """The bench's nginx backend on cpu 1, serving / and /16k from RUN/www; ready when this returns."""
    www = os.path.join(run, "www")
    os.makedirs(www)
    os.makedirs(os.path.join(run, "tmp"))
    with open(os.path.join(www, "16k"), "wb") as f:
        f.write(B.BIG_BODY)
    for d in (run, www):
        os.chmod(d, 0o755)
    conf = B.render("backend-nginx.conf.in", os.path.join(run, "backend.conf"),
                    {"RUN": run, "PORT": str(BACKEND_PORT), "WWW": www,
                     "SMALL_BODY": B.SMALL_BODY.replace("\n", "\\n")})
    backend = B.start_server("backend", ["nginx", "-p", run, "-c", conf], "1", run)
    try:
        B.wait_ready(backend, BACKEND_PORT, 10)
    except BaseException:
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
        raise
    return backend


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the binary to compare against")
    ap.add_argument("--after", default=B.DEFAULT_FRONTDOOR)
    ap.add_argument("--full", action="store_true", help="every stage on (bench/conf/frontdoor-full.yaml.in)")
    ap.add_argument("--path", default="/", help="/ (100 bytes) or /16k")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=6)
    args = ap.parse_args()
    run = tempfile.mkdtemp(prefix="fd-cpu-split-")
    backend = start_backend(run)
    figures = {"before": [], "after": []}
    try:
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                figures[name].append(one_round(getattr(args, name), args, run))
                user, kernel = figures[name][-1]
                print("round %d %-6s user %.2f  kernel %.2f  total %.2f µs/req" % (r + 1, name, user, kernel,
                                                                                user + kernel), flush=True)
    finally:
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
    print("\n%s, %s, %d rounds of %d s\n" % ("full pipeline" if args.full else "frontdoor proxy", args.path,
                                            args.rounds, args.seconds))
    print("| µs/req (median) | before | after | after ÷ before, median (rounds) |")
    print("|---|---:|---:|---|")
    for label, pick in (("user", lambda f: f[0]), ("kernel", lambda f: f[1]), ("total", lambda f: f[0] + f[1])):
        ratios = [pick(a) / pick(b) for a, b in zip(figures["after"], figures["before"])]
        print("| %s | %.2f | %.2f | %.2f (%s) |" % (
            label, statistics.median(pick(f) for f in figures["before"]),
            statistics.median(pick(f) for f in figures["after"]), statistics.median(ratios),
            ", ".join("%.2f" % x for x in ratios)))


if __name__ == "__main__":
    main()
