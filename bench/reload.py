#!/usr/bin/env python3
"""Reloads under load: each proxy is reloaded once a second while keep-alive clients send requests
at a steady rate; what counts is how many requests fail. frontdoor (SIGHUP), nginx (SIGHUP to its
master) and HAProxy (SIGUSR2 to its master, `-W`) run the same reference configs as bench/run.sh,
one after the other, against one nginx backend. Loopback only; every process is started here and
stopped by PID; the run ends by itself.

  python3 bench/reload.py                          # 60 s each, 500 req/s over 8 connections
  python3 bench/reload.py --secs 10 --only frontdoor
  python3 bench/reload.py --frontdoor build/frontdoor
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def render(template, out, subs):
    with open(os.path.join(HERE, "conf", template)) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace("@" + k + "@", v)
    with open(out, "w") as f:
        f.write(text)
    return out


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def one_request(sock, reader):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        part = sock.recv(65536)
        if not part:
            raise ConnectionError("closed")
        head += part
    header, _, rest = head.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    length = 0
    for line in header.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        part = sock.recv(65536)
        if not part:
            raise ConnectionError("closed mid-body")
        rest += part
    return status


def load(port, rate, conns, secs, results):
    """`conns` keep-alive clients, `rate` requests a second in all; a failed request is counted and
    its client reconnects (as an HTTP client library would, after reporting the error)."""
    stop_at = time.monotonic() + secs
    per = rate / conns

    def client(k):
        sent = failed = 0
        sock = None
        start = time.monotonic()
        while time.monotonic() < stop_at:
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                if one_request(sock, None) != 200:
                    failed += 1
            except (OSError, ConnectionError, ValueError, IndexError):
                failed += 1
                if sock is not None:
                    sock.close()
                sock = None
            sent += 1
            time.sleep(max(0.0, start + sent / per - time.monotonic()))
        if sock is not None:
            sock.close()
        results[k] = (sent, failed)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    return threads


def measure(name, argv, port, reload_signal, pid_of, args, run_dir):
    log = open(os.path.join(run_dir, name + ".log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        if not wait_port(port):
            return {"error": "did not start (see %s.log)" % name}
        time.sleep(0.5)
        results = {}
        threads = load(port, args.rate, args.conns, args.secs, results)
        reloads = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.secs - 0.5:
            time.sleep(1)
            os.kill(pid_of(proc), reload_signal)
            reloads += 1
        for t in threads:
            t.join(args.secs + 30)
        sent = sum(s for s, _ in results.values())
        failed = sum(f for _, f in results.values())
        return {"sent": sent, "failed": failed, "reloads": reloads}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secs", type=float, default=60)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--only", default="frontdoor,nginx,haproxy")
    ap.add_argument("--frontdoor", default=os.path.join(REPO, "build", "frontdoor"))
    args = ap.parse_args()
    if args.secs > 600:
        sys.exit("reload.py: bounded to 600 s a contender")
    for tool in ("nginx", "haproxy"):
        if shutil.which(tool) is None:
            sys.exit("reload.py: needs %s (Debian: apt-get install nginx haproxy)" % tool)
    run_dir = tempfile.mkdtemp(prefix="fd-reload-")
    os.makedirs(os.path.join(run_dir, "tmp"), exist_ok=True)
    backend_port, port = 18191, 18291
    backend_conf = render("backend-nginx.conf.in", os.path.join(run_dir, "backend.conf"),
                          {"RUN": run_dir, "PORT": str(backend_port)})
    backend = subprocess.Popen(["nginx", "-p", run_dir, "-c", backend_conf], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    rows = []
    try:
        if not wait_port(backend_port):
            sys.exit("reload.py: the backend did not start")
        upstream = "127.0.0.1:%d" % backend_port
        want = args.only.split(",")
        if "frontdoor" in want:
            conf = os.path.join(run_dir, "frontdoor.yaml")
            printed = subprocess.run([args.frontdoor, "proxy", "--listen", "127.0.0.1:%d" % port, "--to", upstream,
                                      "--workers", "1", "--print-config"], capture_output=True, text=True, check=True)
            with open(conf, "w") as f:
                f.write(printed.stdout)
            rows.append(("frontdoor (SIGHUP)", measure("frontdoor", [args.frontdoor, "run", "-c", conf], port,
                                                       signal.SIGHUP, lambda p: p.pid, args, run_dir)))
        if "nginx" in want:
            conf = render("proxy-nginx.conf.in", os.path.join(run_dir, "nginx.conf"),
                          {"RUN": run_dir, "PORT": str(port), "UPSTREAM_SERVERS": "server %s;" % upstream})
            rows.append(("nginx (SIGHUP)", measure("nginx", ["nginx", "-p", run_dir, "-c", conf], port, signal.SIGHUP,
                                                   lambda p: p.pid, args, run_dir)))
        if "haproxy" in want:
            conf = render("proxy-haproxy.cfg.in", os.path.join(run_dir, "haproxy.cfg"),
                          {"RUN": run_dir, "PORT": str(port), "HAPROXY_SERVERS": "server s1 %s" % upstream})
            rows.append(("haproxy -W (SIGUSR2)", measure("haproxy", ["haproxy", "-W", "-db", "-f", conf], port,
                                                         signal.SIGUSR2, lambda p: p.pid, args, run_dir)))
    finally:
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
    print("| proxy | requests | failed | failed % | reloads |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows:
        if "error" in r:
            print("| %s | — | — | — | %s |" % (name, r["error"]))
            continue
        print("| %s | %d | %d | %.2f | %d |" % (name, r["sent"], r["failed"], 100.0 * r["failed"] / max(1, r["sent"]),
                                               r["reloads"]))
    print("\n%g s each at %g req/s over %d keep-alive connections; logs in %s" % (args.secs, args.rate, args.conns,
                                                                                run_dir))


if __name__ == "__main__":
    main()
