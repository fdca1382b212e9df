#!/usr/bin/env python3
"""frontdoor's benchmark: frontdoor side by side with nginx and HAProxy (see bench/README.md).

Contenders: direct (load generator -> backend, the limit), nginx (reverse proxy, 1 worker,
upstream keep-alive), haproxy (1 thread, http-reuse always), frontdoor (`frontdoor proxy`,
1 worker, access log off), frontdoor-log (same, access log to a file), plus any number of
--extra commands. Rounds interleave the contenders test by test, the order rotating every
round; the report gives medians over rounds, ratios against direct, nginx and HAProxy measured
in the same run, the cost of frontdoor's access log, and the spread of every figure.

Only the Python standard library, wrk, h2load, nginx, haproxy and taskset are used.
"""
import argparse
import datetime
import json
import http.client
import math
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(BENCH, "conf")
REPO = os.path.dirname(BENCH)
DEFAULT_FRONTDOOR = os.path.join(REPO, "build", "frontdoor")
# The frontdoor contenders: the CLI contract of `frontdoor proxy` (README.md, src/cli).
FRONTDOOR_CMD = "{BIN} proxy --listen 127.0.0.1:{PORT} --to {BACKENDS} --workers 1 --access-log {LOG}"
BUILTIN = ("direct", "nginx", "haproxy", "frontdoor", "frontdoor-log")
# Debian 12 package of every tool the harness runs.
TOOLS = {"nginx": "nginx", "haproxy": "haproxy", "wrk": "wrk", "h2load": "nghttp2-client",
         "taskset": "util-linux"}
SMALL_BODY = ("frontdoor-bench:" + "x" * 83 + "\n")          # exactly 100 bytes
BIG_SIZE = 16384
BIG_BODY = b"0123456789abcdef" * (BIG_SIZE // 16)
USER_HZ = os.sysconf("SC_CLK_TCK")
PORT_MIN, PORT_MAX = 18000, 18999

STARTED = []          # Popen objects of every server we started (we kill exactly these)
RUNNING = []          # the load generator now running, if any


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- process control
def run_tool(cmd, timeout):
    """subprocess.run(capture_output=True, text=True) whose child cleanup() can stop."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    RUNNING.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    finally:
        RUNNING.remove(p)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def cleanup(*_):
    """Stop every process this script started: SIGTERM each server's process group, then SIGKILL."""
    for p in list(RUNNING):
        if p.poll() is None:
            p.kill()
    for p in STARTED:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)     # own session => pgid == pid
            except ProcessLookupError:
                pass
    deadline = time.time() + 3
    for p in STARTED:
        while p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    STARTED.clear()


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def taskset(cpus):
    return ["taskset", "-c", cpus] if cpus else []


def start_server(name, argv, cpus, run_dir, env=None):
    out = open(os.path.join(run_dir, f"{name}.log"), "wb")
    p = subprocess.Popen(taskset(cpus) + argv, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=run_dir)
    p.bench_name = name
    p.bench_log = out.name
    STARTED.append(p)
    return p


def http_get(port, path, timeout=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_ready(p, port, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if p.poll() is not None:
            break
        try:
            st, body = http_get(port, "/")
            if st == 200:
                return
            last = f"HTTP {st}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    tail = open(p.bench_log, errors="replace").read()[-2000:]
    state = f"exited with {p.returncode}" if p.poll() is not None else f"not ready after {timeout}s ({last})"
    raise SystemExit(f"error: {p.bench_name} on port {port} {state}; its log {p.bench_log} ends:\n{tail}")


def check_bodies(name, port):
    """The contender must return the backends' exact bodies: 100 bytes on /, 16384 on /16k."""
    for path, want in (("/", SMALL_BODY.encode()), ("/16k", BIG_BODY)):
        try:
            st, body = http_get(port, path)
        except OSError as e:
            raise SystemExit(f"error: {name}: GET {path} failed: {e}")
        if st != 200 or body != want:
            what = "the same bytes" if len(body) == len(want) else f"{len(body)} bytes"
            raise SystemExit(f"error: {name}: GET {path} gave HTTP {st} with {what}, "
                             f"want 200 with the backend's {len(want)}-byte body")


# --------------------------------------------------------------------------- /proc accounting
def proc_tree(root):
    """root pid plus all its descendants (a fresh scan of /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_snapshot(roots):
    """(sum_exec_runtime ns over all threads, utime+stime seconds, set of pids) for the trees."""
    ns, st, pids = 0, 0.0, set()
    for root in roots:
        for pid in proc_tree(root):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    s = f.read()
                fields = s[s.rindex(")") + 2:].split()
                st += (int(fields[11]) + int(fields[12])) / USER_HZ     # utime, stime
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        ns += int(f.read().split()[0])
                pids.add(pid)
            except (OSError, ValueError):
                pass
    return ns, st, pids


def status_kib(roots, field):
    """Sum of a /proc/PID/status memory field (VmHWM: peak RSS, VmRSS: resident now) over the process
    trees, KiB."""
    total = 0
    for root in roots:
        for pid in proc_tree(root):
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith(field + ":"):
                            total += int(line.split()[1])
            except OSError:
                pass
    return total


def hwm_kib(roots):
    return status_kib(roots, "VmHWM")


def rss_kib(roots):
    return status_kib(roots, "VmRSS")


def run_idle(args, c):
    """Memory per idle keep-alive connection: --idle-conns connections, each sending one GET and
    then staying open and idle; (resident memory with them - before) / connections. Requests go in
    waves of 50, as clients arrive, not all at once (what is measured is the idle cost, not a burst)."""
    before = rss_kib(c.roots)
    socks, failed = [], 0
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    try:
        for start in range(0, args.idle_conns, 50):
            wave = []
            for _ in range(min(50, args.idle_conns - start)):
                try:
                    s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
                    s.sendall(request)
                    wave.append(s)
                except OSError:
                    failed += 1
            for s in wave:
                try:
                    got = b""
                    while b"\r\n\r\n" not in got or len(got) < 100:  # the 100-byte body after the head
                        part = s.recv(65536)
                        if not part:
                            raise OSError("closed")
                        got += part
                    socks.append(s)
                except OSError:
                    failed += 1
                    s.close()
        time.sleep(1.5)  # idle: whatever a proxy does to idle connections, it has done it
        held = sum(1 for s in socks if s.fileno() >= 0)
        after = rss_kib(c.roots)
    finally:
        for s in socks:
            s.close()
    n = max(1, len(socks))
    return {"n": n, "errors": failed, "rps": 0.0, "idle_kib": max(0.0, (after - before) / n), "held": held}


def cores_snapshot(cpus):
    """{cpu: (busy ticks, steal ticks)} from /proc/stat for the listed cpus."""
    want = set(parse_cpus(cpus)) if cpus else None
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m and (want is None or int(m.group(1)) in want):
                v = list(map(int, m.group(2).split()))
                user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
                out[int(m.group(1))] = (user + nice + system + irq + softirq, steal)
    return out


def parse_cpus(spec):
    res = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            res.extend(range(int(a), int(b) + 1))
        elif part:
            res.append(int(part))
    return res


def cores_delta(a, b):
    busy = sum(b[c][0] - a[c][0] for c in a) / USER_HZ
    steal = sum(b[c][1] - a[c][1] for c in a) / USER_HZ
    return busy, steal


# --------------------------------------------------------------------------- load generators
def run_wrk(args, port, path, secs, close):
    cmd = taskset(args.load_cpus) + ["wrk", "-t", "1", "-c", str(args.conns), "-d", f"{secs}s",
                                     "--timeout", "5s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    r = run_tool(cmd, timeout=secs + 30)
    out = r.stdout + r.stderr
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if r.returncode != 0 or not m or not rps:
        return {"error": f"wrk failed rc={r.returncode}: {out[-300:]}"}
    errors = 0
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if se:
        errors += sum(map(int, se.groups()))
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if n2:
        errors += int(n2.group(1))
    return {"n": int(m.group(1)), "rps": float(rps.group(1)), "errors": errors, "raw": out}


def run_h2load(args, port, run_dir, tag):
    per_client = args.lat_rate / args.lat_conns
    n = args.lat_conns * max(1, round(args.lat_rate * args.lat_secs / args.lat_conns))
    logf = os.path.join(run_dir, f"h2load-{tag}.tsv")
    if os.path.exists(logf):
        os.unlink(logf)                 # h2load appends to its log file
    # -r 1 --rate-period 1ms: start one connection per ms so the clients' timers are staggered
    cmd = taskset(args.load_cpus) + ["h2load", "--h1", "-t", "1", "-c", str(args.lat_conns),
                                     "--rps", f"{per_client:g}", "-n", str(n), "-r", "1",
                                     "--rate-period", "1ms", "--log-file", logf,
                                     f"http://127.0.0.1:{port}/"]
    r = run_tool(cmd, timeout=args.lat_secs * 3 + 30)
    out = r.stdout + r.stderr
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    if r.returncode != 0 or not m or not fin or not os.path.exists(logf):
        return {"error": f"h2load failed rc={r.returncode}: {out[-300:]}"}
    lat = []
    bad = 0
    with open(logf) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3:
                lat.append(int(cols[2]))
                if not cols[1].startswith("2"):
                    bad += 1
    lat.sort()

    def pct(q):
        return float(lat[max(0, math.ceil(q * len(lat)) - 1)])
    succeeded = int(m.group(4))
    return {"n": succeeded, "errors": n - succeeded + bad, "rps": float(fin.group(3)),
            "p50": pct(0.50), "p99": pct(0.99), "p999": pct(0.999),
            "mean": statistics.fmean(lat), "raw": out}


def run_slowloris(args, port, run_dir, tag):
    """The latency run again, beside a slowloris swarm (bench/lib/slowloris.py) that holds
    --slow-conns connections sending a head one byte a second (cut ones reconnect). The swarm starts
    --slow-warmup seconds first, so the proxy's header timeout (10 s for frontdoor) cuts the first
    wave during the measurement."""
    secs = args.slow_warmup + args.lat_secs + 2
    cmd = taskset(args.load_cpus) + [sys.executable, os.path.join(BENCH, "lib", "slowloris.py"), "--port", str(port),
                                     "--conns", str(args.slow_conns), "--secs", f"{secs:g}"]
    out = open(os.path.join(run_dir, f"slowloris-{tag}.log"), "w")
    swarm = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(args.slow_warmup)
        res = run_h2load(args, port, run_dir, tag)
    finally:
        try:
            swarm.wait(timeout=secs + 30)
        except subprocess.TimeoutExpired:
            os.killpg(swarm.pid, signal.SIGKILL)
            swarm.wait()
        out.close()
    return res


# --------------------------------------------------------------------------- contenders
class Contender:
    def __init__(self, name, port, proc=None, access_log=None):
        self.name, self.port, self.proc, self.access_log = name, port, proc, access_log

    @property
    def roots(self):
        return [self.proc.pid] if self.proc else []

    def alive(self):
        return self.proc is None or self.proc.poll() is None


def render(template, out, subs):
    with open(os.path.join(CONF, template)) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace(f"@{k}@", v)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SystemExit(f"error: {template}: unsubstituted {left}")
    with open(out, "w") as f:
        f.write(text)
    return out


def frontdoor_argv(args, port, backends, access_log):
    cmd = FRONTDOOR_CMD
    for k, v in (("{BIN}", shlex.quote(args.frontdoor)), ("{PORT}", str(port)),
                 ("{BACKENDS}", backends), ("{LOG}", shlex.quote(access_log))):
        cmd = cmd.replace(k, v)
    return shlex.split(cmd) + shlex.split(args.frontdoor_args)


def start_all(args, run_dir, want):
    os.makedirs(os.path.join(run_dir, "tmp"), exist_ok=True)
    www = os.path.join(run_dir, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "16k"), "wb") as f:
        f.write(BIG_BODY)
    os.chmod(www, 0o755)
    os.chmod(run_dir, 0o755)

    be_ports = [args.backend_port + i for i in range(args.backends)]
    extra_ports = [args.extra_port + i for i in range(len(args.extra))]
    fd_ports = [args.frontdoor_port, args.frontdoor_port + 1]
    for port in be_ports + [args.nginx_port, args.haproxy_port] + fd_ports + extra_ports:
        if not PORT_MIN <= port <= PORT_MAX:
            raise SystemExit(f"error: port {port} outside {PORT_MIN}-{PORT_MAX}")
        if not port_free(port):
            raise SystemExit(f"error: port {port} on 127.0.0.1 is already in use (see --help for the port options)")
    backends_arg = ",".join(f"127.0.0.1:{p}" for p in be_ports)

    backends = []
    for port in be_ports:
        conf = render("backend-nginx.conf.in", os.path.join(run_dir, f"backend-{port}.conf"),
                      {"RUN": run_dir, "PORT": str(port), "WWW": www,
                       "SMALL_BODY": SMALL_BODY.replace("\n", "\\n")})
        p = start_server(f"backend-{port}", ["nginx", "-p", run_dir, "-c", conf], args.backend_cpus, run_dir)
        backends.append((p, port))
    for p, port in backends:
        wait_ready(p, port, 10)
        check_bodies(f"backend-{port}", port)

    contenders = [Contender("direct", be_ports[0])]
    # both configs are always rendered (to read, or for an --extra to derive a variant from)
    ups = "\n        ".join(f"server 127.0.0.1:{p};" for p in be_ports)
    conf = render("proxy-nginx.conf.in", os.path.join(run_dir, "nginx-proxy.conf"),
                  {"RUN": run_dir, "PORT": str(args.nginx_port), "UPSTREAM_SERVERS": ups})
    srv = "\n    ".join(f"server s{i + 1} 127.0.0.1:{p}" for i, p in enumerate(be_ports))
    cfg = render("proxy-haproxy.cfg.in", os.path.join(run_dir, "haproxy.cfg"),
                 {"RUN": run_dir, "PORT": str(args.haproxy_port), "HAPROXY_SERVERS": srv})
    if "nginx" in want:
        p = start_server("nginx", ["nginx", "-p", run_dir, "-c", conf], args.proxy_cpus, run_dir)
        contenders.append(Contender("nginx", args.nginx_port, p))
    if "haproxy" in want:
        p = start_server("haproxy", ["haproxy", "-db", "-f", cfg], args.proxy_cpus, run_dir)
        contenders.append(Contender("haproxy", args.haproxy_port, p))
    for name, port, access_log in (("frontdoor", fd_ports[0], "off"),
                                   ("frontdoor-log", fd_ports[1], os.path.join(run_dir, "access.log"))):
        if name not in want:
            continue
        argv = frontdoor_argv(args, port, backends_arg, access_log)
        with open(os.path.join(run_dir, f"{name}.cmd"), "w") as f:
            f.write(shlex.join(argv) + "\n")
        log(f"{name} on port {port}: {shlex.join(argv)}")
        p = start_server(name, argv, args.proxy_cpus, run_dir)
        contenders.append(Contender(name, port, p, access_log if access_log != "off" else None))
    for i, spec in enumerate(args.extra):
        m = re.match(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$", spec, re.S)
        name, cmd = (m.group(1), m.group(2)) if m else (f"extra{i + 1}", spec)
        if name in BUILTIN or name in [c.name for c in contenders]:
            raise SystemExit(f"error: --extra name {name!r} is taken")
        port = extra_ports[i]
        subs = {"{PORT}": str(port), "{BACKENDS}": backends_arg,
                "{BACKEND_PORTS}": ",".join(map(str, be_ports)), "{RUN}": run_dir, "{BENCH}": BENCH,
                "{FRONTDOOR}": shlex.quote(args.frontdoor)}
        for k, v in subs.items():
            cmd = cmd.replace(k, v)
        if name not in want:
            continue
        env = dict(os.environ, BENCH_PORT=str(port), BENCH_BACKENDS=backends_arg,
                   BENCH_RUN_DIR=run_dir, BENCH_DIR=BENCH)
        log(f"extra contender {name} on port {port}: {cmd}")
        p = start_server(name, ["bash", "-c", cmd], args.proxy_cpus, run_dir, env)
        contenders.append(Contender(name, port, p))
    for c in contenders[1:]:
        wait_ready(c.proc, c.port, args.start_timeout)
        check_bodies(c.name, c.port)
    if "direct" not in want:
        contenders = contenders[1:]
    return contenders, backends


# --------------------------------------------------------------------------- one measurement
def measure(args, test, c, backends, run_dir, tag):
    if not c.alive():
        return {"error": f"{c.name} is no longer running (rc={c.proc.returncode})"}
    be_roots = [p.pid for p, _ in backends]
    if c.access_log and os.path.exists(c.access_log):
        os.truncate(c.access_log, 0)       # opened O_APPEND: keeps the run dir small, size = this run
    cpu0 = cpu_snapshot(c.roots)
    be0 = cpu_snapshot(be_roots)
    core0 = cores_snapshot(args.proxy_cpus or None)
    lcore0 = cores_snapshot(args.load_cpus or None)
    t0 = time.time()
    if test == "tput":
        res = run_wrk(args, c.port, "/", args.tput_secs, close=False)
    elif test == "close":
        res = run_wrk(args, c.port, "/", args.close_secs, close=True)
    elif test == "big":
        res = run_wrk(args, c.port, "/16k", args.big_secs, close=False)
    elif test == "lat":
        res = run_h2load(args, c.port, run_dir, tag)
    elif test == "slow":
        res = run_slowloris(args, c.port, run_dir, tag)
    elif test == "idle":
        return run_idle(args, c)
    else:
        raise ValueError(test)
    wall = time.time() - t0
    cpu1 = cpu_snapshot(c.roots)
    be1 = cpu_snapshot(be_roots)
    core1 = cores_snapshot(args.proxy_cpus or None)
    lcore1 = cores_snapshot(args.load_cpus or None)
    if "error" in res:
        return res
    if not c.alive():
        return {"error": f"{c.name} died during the run (rc={c.proc.returncode})"}
    n = max(1, res["n"])
    if c.proc:
        res["cpu_us"] = (cpu1[0] - cpu0[0]) / 1e3 / n          # schedstat, ns precision
        res["cpu_us_stat"] = (cpu1[1] - cpu0[1]) * 1e6 / n     # utime+stime, 10 ms units
        res["cpu_util"] = (cpu1[0] - cpu0[0]) / 1e9 / wall
        if cpu0[2] != cpu1[2]:
            res["warn"] = f"process set changed {sorted(cpu0[2])} -> {sorted(cpu1[2])}"
    if c.access_log:
        size = os.path.getsize(c.access_log) if os.path.exists(c.access_log) else 0
        res["log_bytes"] = size / n
        sample = os.path.join(run_dir, "access.sample.log")
        if size and not os.path.exists(sample):
            with open(c.access_log, "rb") as src, open(sample, "wb") as dst:
                dst.write(src.read(8192))
        if size == 0:
            res["warn"] = (res.get("warn", "") + " access log stayed empty").strip()
    res["be_cpu_us"] = (be1[0] - be0[0]) / 1e3 / n
    busy, steal = cores_delta(core0, core1)
    res["core_us"] = busy * 1e6 / n
    if c.proc and args.proxy_cpus and not set(parse_cpus(args.proxy_cpus)) & set(
            parse_cpus(args.load_cpus or "") + parse_cpus(args.backend_cpus or "")):
        # the proxy's cpus run nothing else of ours: any other busy time there is foreign load
        # (a compiler, ...), which makes the figures of this run unreliable
        foreign = busy - (cpu1[0] - cpu0[0]) / 1e9
        res["foreign_pct"] = max(0.0, 100 * foreign / wall / max(1, len(core0)))
    res["steal_pct"] = 100 * steal / wall / max(1, len(core0))
    lbusy, _ = cores_delta(lcore0, lcore1)
    res["load_core_pct"] = 100 * lbusy / wall / max(1, len(lcore0))   # cpus of the load generator
    return res


# --------------------------------------------------------------------------- report
METRICS = [  # key, header, format, higher_is_better
    ("tput.rps", "keep-alive req/s", "{:,.0f}", True),
    ("tput.cpu_us", "CPU µs/req @max", "{:.2f}", False),
    ("lat.p50", "p50 µs @rate", "{:.0f}", False),
    ("lat.p99", "p99 µs @rate", "{:.0f}", False),
    ("lat.cpu_us", "CPU µs/req @rate", "{:.2f}", False),
    ("slow.p50", "p50 µs slowloris", "{:.0f}", False),
    ("slow.p99", "p99 µs slowloris", "{:.0f}", False),
    ("idle.idle_kib", "KiB / idle conn", "{:.2f}", False),
    ("close.rps", "conn-close req/s", "{:,.0f}", True),
    ("close.cpu_us", "CPU µs/req close", "{:.2f}", False),
    ("big.rps", "16 KiB req/s", "{:,.0f}", True),
    ("big.cpu_us", "CPU µs/req 16 KiB", "{:.2f}", False),
    ("rss_mib", "peak RSS MiB", "{:.1f}", False),
]
FOREIGN_WARN_PCT = 5     # other processes' share of the proxy's cpu above which a run is flagged
# p99.9 is in results.tsv and the progress lines, not in the report: too noisy here to compare


def report(args, results, names, meta):
    def vals(name, key):
        return [v for v in results.get((name, key), []) if v is not None]

    def med(name, key):
        v = vals(name, key)
        return statistics.median(v) if v else None

    def table(header_first, rows, metrics):
        out = ["| " + header_first + " | " + " | ".join(h for _, h, _, _ in metrics) + " |",
               "|---|" + "---:|" * len(metrics)]
        out += [f"| {n} | " + " | ".join(cells) + " |" for n, cells in rows]
        return out

    metrics = [m for m in METRICS if m[0] == "rss_mib" or m[0].split(".")[0] in args.tests]
    lines = [f"### {meta['title']}", "", meta["about"], "",
             f"Medians over {args.rounds} round(s) (CPU = the proxy's whole process tree, "
             "sum_exec_runtime ÷ requests; @rate = h2load at a constant rate; lower is better "
             "except req/s).", ""]
    rows, flagged = [], False
    for n in names:
        cells = []
        for key, _, fmt, _ in metrics:
            m = med(n, key)
            errs = sum(vals(n, key.split(".")[0] + ".errors")) if "." in key else 0
            cell = "—" if m is None else fmt.format(m)
            if errs:
                cell += f" ({errs:,.0f} err)"
            if results.get((n, key + ".failed")):
                cell += " FAILED"
            lc = med(n, key.split(".")[0] + ".load_core_pct") if key.endswith(".rps") else None
            if n != "direct" and lc is not None and lc >= 95:
                cell += " ‡"
                flagged = True
            cells.append(cell)
        rows.append((n, cells))
    lines += table("contender", rows, metrics) + [""]
    foreign = [v for n in names for t in args.tests for v in vals(n, f"{t}.foreign_pct")]
    if foreign and max(foreign) >= FOREIGN_WARN_PCT:
        lines += [f"**Warning: other processes used up to {max(foreign):.0f}% of the proxy's cpu during "
                  f"these runs (median {statistics.median(foreign):.0f}%): the machine was not idle and "
                  "these figures are not reliable.** Column `foreign_pct` of results.tsv has every run.", ""]
    if flagged:
        lines += ["‡ the load generator's cpus were ≥ 95% busy during this run too: the req/s may be "
                  "capped by the harness rather than by the proxy; compare CPU µs/req instead.", ""]

    # ratios: against the two proxies a user would pick instead (same run), then against the limit
    for refs, what in ((("nginx", "haproxy"), "value ÷ nginx / value ÷ haproxy"),
                       (("direct",), "value ÷ direct (the load generator straight to the backend)")):
        refs = [r for r in refs if r in names]
        others = [n for n in names if n != "direct"]
        if not refs or not others or others == refs[:1]:
            continue
        lines += [f"Ratios of medians, {what} (req/s: higher is better; µs and MiB: lower is better).", ""]
        # direct has no proxy: no CPU or RSS figure to divide by
        shown = [m for m in metrics if refs != ["direct"] or not m[0].endswith((".cpu_us", "rss_mib"))]
        rows = []
        for n in others:
            cells = []
            for key, _, _, _ in shown:
                m = med(n, key)
                parts = []
                for r in refs:
                    rv = med(r, key)
                    parts.append("—" if (m is None or not rv) else f"{m / rv:.2f}")
                cells.append(" / ".join(parts))
            rows.append((n, cells))
        lines += table("contender", rows, shown) + [""]

    # the access log's cost: the same binary with and without it, same run
    if "frontdoor" in names and "frontdoor-log" in names:
        parts = []
        for key, head, fmt, hib in metrics:
            if not key.endswith((".cpu_us", ".rps")) or key == "lat.rps":
                continue
            a, b = med("frontdoor", key), med("frontdoor-log", key)
            if a is None or b is None or not a:
                continue
            parts.append(f"{head} {fmt.format(a)} → {fmt.format(b)} ({100 * (b - a) / a:+.0f}%)")
        lb = med("frontdoor-log", "tput.log_bytes")
        lines += ["Cost of the access log (frontdoor → frontdoor-log, `--access-log FILE`): " +
                  ("; ".join(parts) or "—") +
                  (f"; {lb:.0f} bytes logged per request." if lb is not None else "."), ""]

    if args.rounds > 1:
        sm = [m for m in metrics if m[0] != "rss_mib"]
        lines += ["Spread over rounds: (max − min) ÷ median, %.", ""]
        rows = []
        for n in names:
            cells = []
            for key, _, _, _ in sm:
                v = vals(n, key)
                cells.append("—" if len(v) < 2 or not statistics.median(v)
                             else f"{100 * (max(v) - min(v)) / statistics.median(v):.0f}%")
            rows.append((n, cells))
        lines += table("contender", rows, sm) + [""]
    lines += ["Trustworthy on a noisy 2-core VM: keep-alive req/s, CPU µs/req (max, close, 16 KiB), "
              "16 KiB req/s, peak RSS, p50. Coarse only: p99 and CPU µs/req @rate. Conn-close req/s is "
              "capped by the harness: compare its CPU µs/req. See bench/README.md.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
LAYOUTS = {  # proxy cpus, load generator cpus, backend cpus
    "split": ("0", "1", "1"),     # proxy alone on cpu0; wrk/h2load + backends on cpu1
    "shared": ("0", "1", "0"),    # proxy + backends on cpu0; load generator alone on cpu1
    "none": ("", "", ""),         # no pinning: the scheduler decides
}


def tool_versions(args, names):
    out = []
    for cmd in (["nginx", "-v"], ["haproxy", "-v"], ["wrk", "-v"], ["h2load", "--version"]):
        try:
            o = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            out.append((o.stdout + o.stderr).strip().splitlines()[0][:60])
        except (OSError, subprocess.TimeoutExpired, IndexError):
            pass
    if any(n.startswith("frontdoor") for n in names):
        try:
            o = subprocess.run([args.frontdoor, "--version"], capture_output=True, text=True, timeout=10)
            v = (o.stdout + o.stderr).strip().splitlines()
            out.append(v[0][:60] if v else "frontdoor (no --version output)")
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:   # which source was measured (GIT_OPTIONAL_LOCKS: never take the index lock)
            env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
            o = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                               capture_output=True, text=True, timeout=10, env=env)
            if o.returncode == 0:
                out.append("source " + o.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    return out


def on_alarm(_signum, _frame):
    log("error: the run exceeded its time budget (--max-secs); stopping every server")
    cleanup()
    sys.exit(124)


def main():
    ap = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Benchmark frontdoor side by side with nginx and HAProxy as HTTP/1.1 reverse proxies "
                    "(and the load generator straight to the backend). Prints a markdown report; raw "
                    "data go to bench/runs/<timestamp>/. See bench/README.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds; every figure is the median over them")
    ap.add_argument("--quick", action="store_true",
                    help="1 round of short runs (about 1 minute with every contender): a smoke test, "
                         "not a measurement")
    ap.add_argument("--only", default="",
                    help="comma list of contenders to measure: direct,nginx,haproxy,frontdoor,"
                         "frontdoor-log and --extra names (empty: all)")
    ap.add_argument("--tests", default="tput,lat,close,big",
                    help="subset of tput (keep-alive max), lat (constant rate), close "
                         "(Connection: close), big (16 KiB body), slow (lat beside a slowloris swarm), "
                         "idle (memory per idle keep-alive connection); the last two not run by default")
    ap.add_argument("--idle-conns", type=int, default=5000,
                    help="idle keep-alive connections of the idle test (nginx's 8192 worker_connections "
                         "and HAProxy's maxconn 8000 bound it)")
    ap.add_argument("--slow-conns", type=int, default=1000, help="slowloris connections of the slow test")
    ap.add_argument("--slow-warmup", type=float, default=5,
                    help="seconds the swarm runs before the slow test's latency run starts")
    ap.add_argument("--frontdoor", default=os.environ.get("FRONTDOOR_BIN") or DEFAULT_FRONTDOOR,
                    help="the frontdoor binary (env FRONTDOOR_BIN)")
    ap.add_argument("--frontdoor-args", default="",
                    help="extra arguments appended to both frontdoor command lines")
    ap.add_argument("--frontdoor-port", type=int, default=18203,
                    help="port of frontdoor; frontdoor-log gets the next one")
    ap.add_argument("--extra", action="append", default=[],
                    help="'[NAME=]CMD' an extra contender: a command (run by bash -c) that serves "
                         "HTTP/1.1 on {PORT} and proxies to {BACKENDS} (comma list host:port); also "
                         "{BACKEND_PORTS}, {RUN}, {BENCH}, {FRONTDOOR} and env BENCH_PORT, "
                         "BENCH_BACKENDS. Repeatable.")
    ap.add_argument("--extra-port", type=int, default=18205, help="port of the first --extra")
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="split",
                    help="split: proxy alone on cpu 0, load generator + backends on cpu 1")
    ap.add_argument("--proxy-cpus", help="override the layout: taskset list for proxies")
    ap.add_argument("--load-cpus", help="override the layout: taskset list for wrk/h2load")
    ap.add_argument("--backend-cpus", help="override the layout: taskset list for backends")
    ap.add_argument("--backends", type=int, default=2, help="backend instances (round robin)")
    ap.add_argument("--backend-port", type=int, default=18101)
    ap.add_argument("--nginx-port", type=int, default=18201)
    ap.add_argument("--haproxy-port", type=int, default=18202)
    ap.add_argument("--conns", type=int, default=64, help="wrk connections")
    ap.add_argument("--tput-secs", type=int, default=8)
    ap.add_argument("--close-secs", type=int, default=5)
    ap.add_argument("--big-secs", type=int, default=5)
    ap.add_argument("--lat-secs", type=float, default=6)
    ap.add_argument("--lat-rate", type=float, default=5000, help="total req/s of the latency run")
    ap.add_argument("--lat-conns", type=int, default=50)
    ap.add_argument("--warmup-secs", type=int, default=2)
    ap.add_argument("--start-timeout", type=float, default=20)
    ap.add_argument("--max-secs", type=float, default=0,
                    help="hard time limit of the whole run, after which every server is stopped "
                         "(0: twice the planned load time + 120 s)")
    ap.add_argument("--out", help="run directory (default bench/runs/<timestamp>)")
    args = ap.parse_args()
    if os.environ.get("BENCH_EXTRA"):
        args.extra.append(os.environ["BENCH_EXTRA"])
    if args.quick:
        args.rounds, args.tput_secs, args.close_secs, args.big_secs, args.lat_secs = 1, 3, 2, 2, 2
        args.warmup_secs = 1
    if args.rounds < 1 or args.backends < 1 or args.conns < 1:
        raise SystemExit("error: --rounds, --backends and --conns must be at least 1")
    lay = LAYOUTS[args.layout]
    args.proxy_cpus = args.proxy_cpus if args.proxy_cpus is not None else lay[0]
    args.load_cpus = args.load_cpus if args.load_cpus is not None else lay[1]
    args.backend_cpus = args.backend_cpus if args.backend_cpus is not None else lay[2]
    avail = os.sched_getaffinity(0)
    for opt, cpus in (("--proxy-cpus", args.proxy_cpus), ("--load-cpus", args.load_cpus),
                      ("--backend-cpus", args.backend_cpus)):
        if cpus and not set(parse_cpus(cpus)) <= avail:
            raise SystemExit(f"error: {opt} {cpus}: only cpus {sorted(avail)} are available here "
                             "(use --layout none on a machine with fewer than 2 cpus)")
    args.tests = [t for t in args.tests.split(",") if t]
    for t in args.tests:
        if t not in ("tput", "lat", "close", "big", "slow", "idle"):
            raise SystemExit(f"error: unknown test {t!r} (tests: tput,lat,close,big,slow,idle)")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} not found; on Debian 12: sudo apt-get install "
                         f"{' '.join(sorted(set(TOOLS[t] for t in missing)))}")
    extra_names = []
    for i, spec in enumerate(args.extra):
        m = re.match(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$", spec, re.S)
        extra_names.append(m.group(1) if m else f"extra{i + 1}")
    known = list(BUILTIN) + extra_names
    want = [w for w in args.only.split(",") if w] if args.only else known
    for w in want:
        if w not in known:
            raise SystemExit(f"error: --only: unknown contender {w!r} (known: {','.join(known)})")
    want = set(want)
    if want & {"frontdoor", "frontdoor-log"}:
        args.frontdoor = os.path.abspath(args.frontdoor)
        if not (os.path.isfile(args.frontdoor) and os.access(args.frontdoor, os.X_OK)):
            raise SystemExit(f"error: frontdoor binary {args.frontdoor} not found or not executable: build it "
                             "(see README.md), or pass --frontdoor PATH / FRONTDOOR_BIN=PATH, or leave it "
                             "out with --only direct,nginx,haproxy")

    # a hard bound on the whole run: every load generator run is bounded too (run_tool timeouts)
    n_cont = len(want)
    per_round = sum({"tput": args.tput_secs, "lat": args.lat_secs * 1.2, "close": args.close_secs,
                     "slow": args.slow_warmup + args.lat_secs * 1.2 + 2, "idle": 10,
                     "big": args.big_secs}[t] + 1 for t in args.tests)
    planned = n_cont * (args.warmup_secs + 2 + 3 + args.rounds * per_round) + 10
    if not args.max_secs:
        args.max_secs = 2 * planned + 120
    log(f"planned load time ~{planned:.0f} s (hard limit {args.max_secs:.0f} s)")

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.abspath(args.out or os.path.join(BENCH, "runs", stamp))
    os.makedirs(run_dir, exist_ok=True)
    # nginx workers drop root: every folder above the run dir must be traversable, the run dir readable
    os.chmod(run_dir, 0o755)
    blocked = [d for d in (os.path.dirname(run_dir),) if not os.stat(d).st_mode & 0o001]
    if blocked:
        log(f"warning: {blocked[0]} is not world-traversable; the nginx backends may answer 403")
    if not args.out:
        latest = os.path.join(BENCH, "runs", "latest")
        try:
            if os.path.islink(latest):
                os.unlink(latest)
            os.symlink(stamp, latest)
        except OSError:
            pass
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], **{k: v for k, v in vars(args).items()}}, f, indent=1, default=str)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.max_secs))

    results = {}
    raw = open(os.path.join(run_dir, "results.tsv"), "w")
    raw.write("round\ttest\tcontender\tn\trps\terrors\tcpu_us\tcpu_us_stat\tcpu_util\tcore_us\t"
              "be_cpu_us\tsteal_pct\tload_core_pct\tp50\tp99\tp999\tmean\tlog_bytes\tforeign_pct\tidle_kib\n")
    load0 = open("/proc/loadavg").read().split()[:3]
    t_start = time.time()
    try:
        contenders, backends = start_all(args, run_dir, want)
        names = [c.name for c in contenders]
        log(f"run dir {run_dir}; layout {args.layout} (proxy cpus '{args.proxy_cpus}', load '{args.load_cpus}', "
            f"backends '{args.backend_cpus}'); contenders {names}; {args.rounds} round(s); every contender "
            f"returned the backends' 100-byte / and 16384-byte /16k")
        for c in contenders:                     # warm-up: fill pools, fault in memory
            for path, close in (("/", False), ("/16k", False), ("/", True)):
                run_wrk(args, c.port, path, args.warmup_secs if path == "/" and not close else 1, close)
        for r in range(args.rounds):
            k = r % len(contenders)
            order = contenders[k:] + contenders[:k]      # rotate the order every round
            for test in args.tests:
                if test == "idle" and r > 0:
                    continue  # a warm process reuses what round 1 freed: only a cold one tells the cost
                for c in order:
                    res = measure(args, test, c, backends, run_dir, f"r{r + 1}-{c.name}")
                    if "error" in res:
                        log(f"[round {r + 1} {test:5} {c.name:13}] ERROR {res['error']}")
                        for key in ("rps", "p50", "cpu_us"):
                            results.setdefault((c.name, f"{test}.{key}.failed"), []).append(1)
                        continue
                    for key in ("rps", "cpu_us", "p50", "p99", "p999", "errors", "load_core_pct", "log_bytes",
                                "foreign_pct", "idle_kib"):
                        if key in res:
                            results.setdefault((c.name, f"{test}.{key}"), []).append(res[key])
                    raw.write("\t".join(str(x) for x in (
                        r + 1, test, c.name, res["n"], f"{res['rps']:.0f}", res["errors"],
                        *(f"{res[k]:.3f}" if k in res else "" for k in
                          ("cpu_us", "cpu_us_stat", "cpu_util", "core_us", "be_cpu_us", "steal_pct",
                           "load_core_pct", "p50", "p99", "p999", "mean", "log_bytes", "foreign_pct",
                           "idle_kib")))) + "\n")
                    raw.flush()
                    msg = f"[round {r + 1} {test:5} {c.name:13}] {res['rps']:>10,.0f} req/s"
                    if test == "idle":
                        log(f"[round {r + 1} idle  {c.name:13}] {res['idle_kib']:.2f} KiB per idle connection "
                            f"({res['n']} held, {res['errors']} failed)")
                        continue
                    if "cpu_us" in res:
                        msg += f"  cpu {res['cpu_us']:6.2f} µs/req ({100 * res['cpu_util']:.0f}% core)"
                    if test in ("lat", "slow"):
                        msg += f"  p50 {res['p50']:.0f} p99 {res['p99']:.0f} p99.9 {res['p999']:.0f} µs"
                    msg += (f"  backend {res['be_cpu_us']:.2f} µs/req  load-gen cpus {res['load_core_pct']:.0f}%"
                            f"  steal {res['steal_pct']:.1f}%")
                    if "log_bytes" in res:
                        msg += f"  log {res['log_bytes']:.0f} B/req"
                    if res.get("foreign_pct", 0) >= FOREIGN_WARN_PCT:
                        msg += f"  WARN other processes used {res['foreign_pct']:.0f}% of the proxy cpu"
                    if res["errors"]:
                        msg += f"  ERRORS {res['errors']}"
                    if "warn" in res:
                        msg += f"  WARN {res['warn']}"
                    log(msg)
        for c in contenders:
            if c.proc and c.alive():
                results[(c.name, "rss_mib")] = [hwm_kib(c.roots) / 1024]
    finally:
        signal.alarm(0)
        cleanup()
        raw.close()
    elapsed = time.time() - t_start
    load1 = open("/proc/loadavg").read().split()[:3]
    meta = {
        "title": f"{stamp}: layout {args.layout}, {args.rounds} round(s){' (--quick)' if args.quick else ''}, "
                 f"{elapsed:.0f} s",
        "about": (f"proxy cpus `{args.proxy_cpus or 'any'}`, load generator cpus `{args.load_cpus or 'any'}`, "
                  f"backend cpus `{args.backend_cpus or 'any'}`; {args.backends} backend nginx (1 worker each); "
                  f"wrk -t1 -c{args.conns} (max {args.tput_secs}s, close {args.close_secs}s, 16 KiB {args.big_secs}s); "
                  f"h2load --h1 -c{args.lat_conns} at {args.lat_rate:g} req/s for {args.lat_secs:g}s. "
                  f"loadavg {' '.join(load0)} → {' '.join(load1)}. " + "; ".join(tool_versions(args, names)) + "."),
    }
    text = report(args, results, names, meta)
    with open(os.path.join(run_dir, "report.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"raw results: {run_dir}/results.tsv; report: {run_dir}/report.md")


if __name__ == "__main__":
    main()
