"""The admin listener: /health, /ready (and its flip on SIGTERM during server.drain_delay), /metrics
in the Prometheus text format with every fd_ family and http_requests_per_second."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from fdtest import frontdoor_bin, make_config, manifest, request


def _admin_config(upstream, **server):
    cfg = make_config([manifest("p", "m", [upstream])], server=server or {"workers": 2})
    cfg["admin"] = {"address": "127.0.0.1:0", "rate_window": "5s"}
    return cfg


def _get(port, path, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


def test_health_ready_and_unknown_paths(frontdoor, upstream):
    fd = frontdoor(_admin_config(upstream), listeners=("main", "admin"))
    admin = fd.ports["admin"]
    status, ctype, body = _get(admin, "/health")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "workers": 2}
    status, _, body = _get(admin, "/ready")
    assert status == 200 and json.loads(body)["status"] == "ready"
    # Each dependency's state: Redis, PostgreSQL (the manifest store), the upstream endpoints.
    deadline = time.monotonic() + 3
    while json.loads(_get(admin, "/ready")[2])["upstreams"]["endpoints"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # sampled once a second
    ready = json.loads(_get(admin, "/ready")[2])
    assert ready["upstreams"] == {"endpoints": 1, "breaker_open": 0}
    assert ready["postgres"]["configured"] is False and ready["manifest_store"] == {"configured": False}
    assert _get(admin, "/nope")[0] == 404
    assert _get(admin, "/metrics", "POST")[0] == 405
    # A 405 says what is allowed; a HEAD tells the GET's length (it said 0).
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    c.request("POST", "/health")
    r = c.getresponse()
    assert (r.status, r.getheader("Allow")) == (405, "GET, HEAD")
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    c.request("HEAD", "/health")
    r = c.getresponse()
    assert (r.status, r.getheader("Content-Length"), r.read()) == (200, str(len(_get(admin, "/health")[2])), b"")
    c.close()


def test_metrics_in_the_prometheus_text_format(frontdoor, upstream):
    fd = frontdoor(_admin_config(upstream), listeners=("main", "admin"))
    for i in range(7):
        assert request(fd.port, "GET", "/p/m/%d" % i).status == 200
    assert request(fd.port, "GET", "/nowhere/else").status == 404
    status, ctype, text = _get(fd.ports["admin"], "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line), line
            continue
        name, value = line.rsplit(" ", 1)
        assert re.match(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="[^"]*",?)*\})?$', name), line
        if "{" in name:  # labels in name order, so that the checks below need not know the emitted order
            family, labels = name[:-1].split("{", 1)
            name = family + "{" + ",".join(sorted(re.findall(r'[a-z_]+="[^"]*"', labels))) + "}"
        samples[name] = float(value)
    assert samples["fd_requests_received_total"] == 8
    assert samples['fd_responses_total{class="2xx"}'] == 7
    assert samples['fd_errors_total{error="no_manifest"}'] == 1
    assert samples['fd_build_info{version="0.1.0"}'] == 1
    assert samples["fd_workers"] == 2 and samples["fd_memory_usage_bytes"] > 1e6
    assert 'fd_upstream_in_flight{endpoint="%s"}' % upstream.address in samples
    assert "http_requests_per_second" in samples
    # Requests by method, route (the manifest's key, never a raw path) and status; durations by route.
    assert samples['fd_requests_total{endpoint="p/m/*",method="GET",status="200"}'] == 7, sorted(samples)
    assert samples['fd_requests_total{endpoint="none",method="GET",status="404"}'] == 1
    assert samples['fd_request_duration_seconds_count{endpoint="p/m/*"}'] == 7
    assert samples['fd_request_duration_seconds_bucket{endpoint="p/m/*",le="+Inf"}'] == 7
    buckets = [samples['fd_request_duration_seconds_bucket{endpoint="p/m/*",le="%s"}' % le]
               for le in ("0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10")]
    assert buckets == sorted(buckets) and buckets[-1] == 7, buckets
    assert samples["fd_active_requests"] == 0 and samples["fd_open_connections"] >= 0
    assert not any("/p/m/3" in name for name in samples), "a raw path became a label"


def test_http_requests_per_second_follows_the_load(frontdoor, upstream):
    fd = frontdoor(_admin_config(upstream), listeners=("main", "admin"))
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < 3.2:  # about 50 req/s for 3 s
        assert request(fd.port, "GET", "/p/m/load").status == 200
        sent += 1
        time.sleep(0.02)
    time.sleep(1.1)  # one more sample
    text = _get(fd.ports["admin"], "/metrics")[2]
    rate = float(re.search(r"^http_requests_per_second (\S+)$", text, re.M).group(1))
    elapsed = time.monotonic() - t0
    # Requests over the samples' span (within the 5 s window): near sent / elapsed.
    assert 0.5 * sent / elapsed < rate < 1.6 * sent / elapsed, (rate, sent, elapsed)


def test_ready_turns_503_at_once_on_sigterm_while_traffic_is_still_served(frontdoor, upstream):
    fd = frontdoor(_admin_config(upstream, workers=1, drain_delay="1500ms"), listeners=("main", "admin"))
    admin = fd.ports["admin"]
    assert _get(admin, "/ready")[0] == 200
    fd.signal(signal.SIGTERM)
    time.sleep(0.2)
    status, _, body = _get(admin, "/ready")
    assert status == 503 and json.loads(body)["status"] == "draining"
    assert _get(admin, "/health")[0] == 200, "still alive while draining"
    assert request(fd.port, "GET", "/p/m/during-the-delay").status == 200, "traffic still served"
    assert fd.wait(10) == 0


def test_idle_connections_cannot_lock_the_probes_out(frontdoor, upstream):
    # The listener takes a bounded number of connections. Before, connections that never send a
    # request filled it and every probe was refused: kubelet would restart or unroute a healthy pod.
    fd = frontdoor(_admin_config(upstream), listeners=("main", "admin"))
    admin = fd.ports["admin"]
    idle = []
    try:
        for _ in range(100):
            idle.append(socket.create_connection(("127.0.0.1", admin), timeout=5))
        for _ in range(5):
            assert _get(admin, "/health")[0] == 200
            assert _get(admin, "/ready")[0] == 200
        assert "closing the oldest to take a new one" in fd.stderr()
    finally:
        for s in idle:
            s.close()
    # A connection that sends no request is closed once its time to send one is up.
    with socket.create_connection(("127.0.0.1", admin), timeout=5) as s:
        started = time.monotonic()
        s.settimeout(5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 4


def test_per_route_series_keep_their_names_across_a_reload_that_reorders_manifests(frontdoor, upstream):
    # Counts were kept by position in the manifest table and named by the current table: swapping
    # two manifests in a reload moved alpha's history onto beta's name (and a dashboard with it).
    def config(first, second):
        cfg = make_config([manifest(first, "*", [upstream]), manifest(second, "*", [upstream])])
        cfg["admin"] = {"address": "127.0.0.1:0", "rate_window": "5s"}
        for m in cfg["manifests"]:
            m["rate_limits"] = [{"name": "per_" + m["project"], "requests_per_second": 1000, "burst": 1000}]
        return cfg

    fd = frontdoor(config("alpha", "beta"), listeners=("main", "admin"))
    for _ in range(5):
        assert request(fd.port, "GET", "/alpha/x").status == 200
    fd.reload(config("beta", "alpha"))
    assert request(fd.port, "GET", "/beta/x").status == 200
    text = _get(fd.ports["admin"], "/metrics")[2]
    assert re.search(r'^fd_requests_total\{method="GET",endpoint="alpha/\*/\*",status="200"\} 5$', text, re.M), text
    assert re.search(r'^fd_requests_total\{method="GET",endpoint="beta/\*/\*",status="200"\} 1$', text, re.M), text
    allowed = re.findall(r'^fd_ratelimit_requests_total\{limit="per_alpha",manifest="alpha/\*/\*",result="allowed"\} (\d+)$',
                         text, re.M)
    assert allowed == ["5"], allowed


def test_no_admin_section_no_admin_listener(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    assert "admin" not in fd.ports


def test_readiness_can_require_redis(frontdoor, upstream):
    from fdtest import free_port
    cfg = _admin_config(upstream)
    cfg["redis"] = {"address": "127.0.0.1:%d" % free_port(), "connect_timeout": "100ms"}  # nobody there
    fd = frontdoor(cfg, listeners=("main", "admin"), name="optional")
    time.sleep(1.3)  # a sample
    status, _, body = _get(fd.ports["admin"], "/ready")
    assert status == 200, "by default a dependency down does not fail readiness: %s" % body
    assert json.loads(body)["redis"] == {"configured": True, "connected_workers": 0, "required": False}
    cfg["admin"]["ready_requires"] = ["redis"]
    fd2 = frontdoor(cfg, listeners=("main", "admin"), name="required")
    time.sleep(1.3)
    status, _, body = _get(fd2.ports["admin"], "/ready")
    assert status == 503 and json.loads(body)["status"] == "dependency_down", body
    assert request(fd2.port, "GET", "/p/m/still-served").status == 200, "readiness only: traffic still served"
    # The gauge says what /ready says (it followed only the drain before).
    assert re.search(r"^fd_ready 0$", _get(fd2.ports["admin"], "/metrics")[2], re.M)
    assert re.search(r"^fd_ready 1$", _get(fd.ports["admin"], "/metrics")[2], re.M)


def _sanitized(binary):
    """Whether `binary` links the ASan/UBSan runtimes."""
    libraries = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30).stdout
    return "libasan" in libraries or "libubsan" in libraries


def test_an_admin_accept_that_fails_is_retried_after_a_pause(frontdoor, upstream):
    # Out of descriptors, the admin listener tried again at once, for ever: the control thread (the
    # one that answers /health) spun at 100 % of a core.
    if _sanitized(frontdoor_bin()):
        # UBSan's vptr check opens a pipe to test that memory is readable: out of descriptors, it
        # reports a false "invalid vptr" and aborts. The -Werror build runs this test.
        pytest.skip("the sanitizers need descriptors of their own")
    fd = frontdoor(_admin_config(upstream, workers=1), listeners=("main", "admin"))
    used = len(os.listdir("/proc/%d/fd" % fd.pid))
    limit = used + 3
    subprocess.run(["prlimit", "--pid", str(fd.pid), "--nofile=%d:%d" % (limit, limit)], check=True)
    held = []
    try:
        for _ in range(6):  # takes the last descriptors, then waits in the main listener's backlog
            held.append(socket.create_connection(("127.0.0.1", fd.port), timeout=2))
        time.sleep(0.3)
        held.append(socket.create_connection(("127.0.0.1", fd.ports["admin"]), timeout=2))  # cannot be accepted

        def cpu_ticks():
            with open("/proc/%d/stat" % fd.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        before = cpu_ticks()
        time.sleep(2)
        spent = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
        assert spent < 0.5, "%.2f s of CPU in 2 s while accepting failed" % spent
    finally:
        for s in held:
            s.close()
    assert "admin listener: accept: Too many open files" in fd.logs()


class _PausedThread:
    """Stops one thread of a process (ptrace: seize, interrupt) until the block ends; the other
    threads run on. The ptrace calls are made from one thread of ours, as ptrace requires."""

    def __init__(self, tid):
        import ctypes
        import threading
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.tid, self.stopped, self.release, self.error = tid, threading.Event(), threading.Event(), None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import ctypes
        if self.libc.ptrace(0x4206, self.tid, None, None) != 0:  # PTRACE_SEIZE
            self.error = os.strerror(ctypes.get_errno())
            self.stopped.set()
            return
        self.libc.ptrace(0x4207, self.tid, None, None)  # PTRACE_INTERRUPT
        os.waitpid(self.tid, 0x40000000)  # __WALL: a thread of another process
        self.stopped.set()
        self.release.wait(30)
        self.libc.ptrace(17, self.tid, None, None)  # PTRACE_DETACH

    def __enter__(self):
        self.thread.start()
        self.stopped.wait(10)
        assert self.error is None, "ptrace: %s" % self.error
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(10)


def test_a_stuck_worker_turns_no_counter_back_and_does_not_hold_the_admin_thread(frontdoor, upstream):
    # Its share was left out of every sum (counters fell: Prometheus saw a reset), and every /metrics
    # and /status.json waited 1 s for it on the thread that answers /health.
    fd = frontdoor(_admin_config(upstream, workers=2), listeners=("main", "admin"))
    admin = fd.ports["admin"]
    for i in range(30):  # a connection each: both workers serve some
        assert request(fd.port, "GET", "/p/m/%d" % i).status == 200

    def requests_total():
        return float(re.search(r"^fd_requests_received_total (\S+)$", _get(admin, "/metrics")[2], re.M).group(1))

    assert requests_total() == 30
    worker = [t for t in os.listdir("/proc/%d/task" % fd.pid)
              if open("/proc/%d/task/%s/comm" % (fd.pid, t)).read().strip() == "fd-worker-0"]
    assert len(worker) == 1, "no thread named fd-worker-0"
    with _PausedThread(int(worker[0])):
        assert requests_total() == 30  # the first collection waits for it, then counts its last share
        started = time.monotonic()
        assert requests_total() == 30
        assert _get(admin, "/health")[0] in (200, 503)
        assert time.monotonic() - started < 0.5, "a worker known stuck was waited for again"
    deadline = time.monotonic() + 5
    while requests_total() != 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests_total() == 30


def test_a_stuck_worker_takes_the_pod_out_of_the_service_until_it_runs_again(frontdoor, upstream):
    # /ready stayed 200 while a worker was stuck: the kernel still handed that worker's SO_REUSEPORT
    # socket about half of the new connections, which hung until liveness restarted the pod (30 s).
    fd = frontdoor(_admin_config(upstream, workers=2), listeners=("main", "admin"))
    admin = fd.ports["admin"]
    status, _, body = _get(admin, "/ready")
    assert status == 200 and json.loads(body)["stuck_workers"] == []
    worker = [t for t in os.listdir("/proc/%d/task" % fd.pid)
              if open("/proc/%d/task/%s/comm" % (fd.pid, t)).read().strip() == "fd-worker-1"]
    assert len(worker) == 1, "no thread named fd-worker-1"
    with _PausedThread(int(worker[0])):
        deadline = time.monotonic() + 6
        while _get(admin, "/ready")[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, _, body = _get(admin, "/ready")
        ready = json.loads(body)
        assert (status, ready["status"]) == (503, "worker_stuck")
        assert [w["worker"] for w in ready["stuck_workers"]] == [1]
        assert ready["stuck_workers"][0]["heartbeat_ms_ago"] >= 2000
        assert re.search(r"^fd_ready 0$", _get(admin, "/metrics")[2], re.M)
    deadline = time.monotonic() + 5
    while _get(admin, "/ready")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    status, _, body = _get(admin, "/ready")
    assert (status, json.loads(body)["status"]) == (200, "ready")


def test_an_admin_request_too_large_or_malformed_gets_a_status_not_a_reset(frontdoor, upstream):
    # A POST /reload with a body over 1 KiB (and a head over 8 KiB, or garbage) was reset unanswered:
    # the client saw "connection reset" and no reason.
    fd = frontdoor(_admin_config(upstream), listeners=("main", "admin"))
    admin = fd.ports["admin"]
    cases = [
        (b"POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200000, 413, b"at most 1 KiB"),
        (b"GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", 431, b"at most 8 KiB"),
        (b"GET /health HTTP/1.1\r\nHost a\r\n\r\n", 400, b"400 bad request"),
    ]
    for raw, status, says in cases:
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as s:
            try:
                s.sendall(raw)
            except ConnectionError:
                pass  # the answer came, and the linger ended, before all of it was sent
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pytest.fail("reset after %r" % data[:100])
        assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
        assert says in data, data
    assert _get(admin, "/health")[0] == 200
