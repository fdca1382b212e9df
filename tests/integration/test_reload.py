"""Hot reload: SIGHUP, POST /reload and `frontdoor reload` load the file again; routes change with no
connection closed and no request failed; a bad file is refused with every error and the old
configuration keeps serving; what cannot change live keeps its running value and is named."""
import http.client
import json
import os
import re
import signal
import threading
import time

from fdtest import Client, make_config, manifest, request, run_cli, to_yaml


def _write(fd, cfg):
    with open(fd.config_path, "w") as f:
        f.write(to_yaml(cfg) if isinstance(cfg, dict) else cfg)


def _wait_for_log(fd, needle, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in fd.stderr():
            return True
        time.sleep(0.05)
    return False


def _post(port, path, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def test_sighup_changes_routes_and_keeps_connections(frontdoor, upstreams):
    a, b = upstreams("a"), upstreams("b")
    cfg = make_config([manifest("p", "m", [a])])
    fd = frontdoor(cfg)
    with Client(fd.port) as kept:
        assert kept.request("GET", "/p/m/1").headers.get("X-Upstream") == "a"
        cfg["manifests"] = [manifest("p", "m", [b]), manifest("q", "n", [a])]
        _write(fd, cfg)
        fd.signal(signal.SIGHUP)
        assert _wait_for_log(fd, "config reloaded"), fd.stderr()
        # The same keep-alive connection: still open, now routed by the new configuration.
        assert kept.request("GET", "/p/m/2").headers.get("X-Upstream") == "b"
        assert kept.request("GET", "/q/n/3").headers.get("X-Upstream") == "a"


def test_a_bad_file_is_refused_and_the_old_configuration_serves(frontdoor, upstream):
    cfg = make_config([manifest("p", "m", [upstream])])
    fd = frontdoor(cfg)
    _write(fd, "listeners:\n  - address: 127.0.0.1:0\n    bogus: 1\nmanifests:\n  - project: p\n    module: m\n"
               "    endpoints: [\"nowhere\"]\n")
    fd.signal(signal.SIGHUP)
    assert _wait_for_log(fd, "reload refused: generation 1 keeps serving"), fd.stderr()
    err = fd.stderr()
    assert re.search(r"reload refused: .*\.yaml:3:5: unknown key \"bogus\"", err), err
    assert re.search(r"reload refused: .*\.yaml:7:\d+: manifests\[0\]\.endpoints\[0\]\.address", err), err
    assert request(fd.port, "GET", "/p/m/still").status == 200


def test_a_file_the_process_would_not_start_with_is_refused(frontdoor, upstream, tmp_path):
    """logging is kept by a reload (restart needed): a broken access-log path was accepted, and the
    next restart crash-looped. Such a file is refused now, saying why."""
    cfg = make_config([manifest("p", "m", [upstream])])
    fd = frontdoor(cfg)
    broken = dict(cfg, logging={"level": "info", "access_log": {"destination": str(tmp_path / "no-dir" / "a.log")}})
    _write(fd, to_yaml(broken))
    fd.signal(signal.SIGHUP)
    assert _wait_for_log(fd, "reload refused: generation 1 keeps serving"), fd.stderr()
    assert "logging.access_log.destination" in fd.stderr() and "would not start" in fd.stderr(), fd.stderr()
    assert request(fd.port, "GET", "/p/m/still").status == 200


def test_post_reload_with_a_token_and_the_cli(frontdoor, upstreams, monkeypatch):
    a, b = upstreams("a"), upstreams("b")
    monkeypatch.setenv("FD_TEST_ADMIN_TOKEN", "s3cret-token")
    cfg = make_config([manifest("p", "m", [a])])
    cfg["admin"] = {"address": "127.0.0.1:0", "token_env": "FD_TEST_ADMIN_TOKEN"}
    fd = frontdoor(cfg, listeners=("main", "admin"))
    admin = fd.ports["admin"]
    assert _post(admin, "/reload")[0] == 401
    assert _post(admin, "/reload", "wrong")[0] == 401
    assert _post(admin, "/reload", "s3cret-tokeX")[0] == 401  # same length, last byte wrong
    assert "POST /reload refused: missing or wrong bearer token (1 so far)" in fd.stderr()
    status, body = _post(admin, "/reload", "s3cret-token")
    assert status == 200 and json.loads(body) == {"status": "reloaded", "generation": 2, "errors": [],
                                                  "restart_needed": [], "file": fd.config_path}
    # `frontdoor reload -c FILE` finds the daemon through the file's admin listener. A changed
    # listener needs a restart: it keeps its running value, and the result says so.
    cfg["manifests"] = [manifest("p", "m", [b])]
    cfg["admin"]["address"] = "127.0.0.1:%d" % admin
    cfg["server"]["workers"] = 3
    _write(fd, cfg)
    result = run_cli(["reload", "-c", fd.config_path])
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "reloaded" and out["generation"] == 3
    # (admin too: its address was written out, 127.0.0.1:0 became the port it got)
    assert set(out["restart_needed"]) == {"server.workers", "admin"}, out
    assert request(fd.port, "GET", "/p/m/x").headers.get("X-Upstream") == "b"
    # Another file than the daemon's: the daemon reloads its own (it was reported as done).
    other = os.path.join(os.path.dirname(fd.config_path), "other.yaml")
    with open(fd.config_path) as src, open(other, "w") as dst:
        dst.write(src.read())
    elsewhere = run_cli(["reload", "-c", other])
    assert elsewhere.returncode == 1
    assert "the daemon reloaded %s, the file it was started with, not %s" % (fd.config_path, other) in elsewhere.stderr
    # A refused reload: 422 with the errors, exit 1.
    _write(fd, "admin:\n  address: 127.0.0.1:%d\n  token_env: FD_TEST_ADMIN_TOKEN\nlisteners: []\n" % admin)
    bad = run_cli(["reload", "-c", fd.config_path])
    assert bad.returncode == 1
    metrics = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    metrics.request("GET", "/metrics")
    text = metrics.getresponse().read().decode()
    assert 'fd_config_reloads_total{result="ok"} 3' in text and "fd_config_generation 4" in text


def test_a_file_that_is_wrong_with_the_settings_a_reload_keeps_is_refused(frontdoor, upstreams):
    # The file alone is valid; what would serve is the file with the running values of the settings
    # that need a restart, and that must be valid too.
    a, b = upstreams("a"), upstreams("b")
    cfg = make_config([manifest("p", "m", [a])])
    cfg["admin"] = {"address": "127.0.0.1:0"}
    fd = frontdoor(cfg, listeners=("main", "admin"))
    admin = fd.ports["admin"]
    # A global limit with the redis it needs: redis cannot be added live, so the limit would run
    # per process.
    cfg["redis"] = {"address": "127.0.0.1:1"}
    cfg["rate_limits"] = [{"name": "g", "scope": "global", "requests_per_second": 1, "burst": 5}]
    _write(fd, cfg)
    status, body = _post(admin, "/reload")
    out = json.loads(body)
    assert status == 422 and out["status"] == "refused" and out["generation"] == 1, body
    assert out["errors"] == [
        fd.config_path + ": rate_limits[0].scope: global needs the redis section's address (the replicas share "
        "the limit there); a reload keeps the running redis (it changes only with a restart)"], out
    # A request line longer than the running head limit: the file raises both, a reload keeps the
    # running head limit.
    del cfg["redis"], cfg["rate_limits"]
    cfg["limits"].update(max_request_line_bytes="64KiB", max_header_bytes="128KiB")
    _write(fd, cfg)
    status, body = _post(admin, "/reload")
    assert status == 422 and "a reload keeps the running limits.max_header_bytes" in body, body
    assert request(fd.port, "GET", "/p/m/still").headers.get("X-Upstream") == "a"
    # A file that is fine with what a reload keeps still reloads.
    cfg["limits"].update(max_request_line_bytes="16KiB", max_header_bytes="32KiB")
    cfg["manifests"] = [manifest("p", "m", [b])]
    _write(fd, cfg)
    status, body = _post(admin, "/reload")
    assert status == 200 and json.loads(body) == {"status": "reloaded", "generation": 2, "errors": [],
                                                  "restart_needed": [], "file": fd.config_path}, body
    assert request(fd.port, "GET", "/p/m/now").headers.get("X-Upstream") == "b"


def test_reloading_every_few_hundred_ms_under_load_fails_no_request(frontdoor, upstreams):
    a, b = upstreams("a"), upstreams("b")
    cfg = make_config([manifest("p", "m", [a, b])], server={"workers": 2})
    fd = frontdoor(cfg)
    failures, done = [], threading.Event()
    counts = [0, 0]

    def load(k):
        try:
            with Client(fd.port) as c:  # keep-alive: the connection must survive every reload
                while not done.is_set():
                    r = c.request("GET", "/p/m/%d" % counts[k])
                    if r.status != 200:
                        failures.append(r.status)
                    counts[k] += 1
        except Exception as e:  # recorded, asserted below
            failures.append(repr(e))

    threads = [threading.Thread(target=load, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for i in range(8):
        cfg["manifests"][0]["balancing"] = "least_connections" if i % 2 else "round_robin"
        _write(fd, cfg)
        fd.signal(signal.SIGHUP)
        time.sleep(0.3)
    done.set()
    for t in threads:
        t.join(10)
    assert failures == [], failures[:5]
    assert sum(counts) > 100
    assert fd.stderr().count("config reloaded") == 8


def _reload_and_wait(fd, generation):
    fd.signal(signal.SIGHUP)
    assert _wait_for_log(fd, "generation %d" % generation) or "reload refused" in fd.stderr(), fd.stderr()


def test_listeners_added_retargeted_and_removed_without_dropping_connections(frontdoor, upstreams):
    prod, stage = upstreams("prod"), upstreams("stage")
    cfg = make_config([manifest("p", "m", [prod], environment="production"),
                       manifest("p", "m", [stage], environment="staging")])
    fd = frontdoor(cfg)
    with Client(fd.port) as kept:
        assert kept.request("GET", "/p/m/1").headers.get("X-Upstream") == "prod"
        # A new listener.
        cfg["listeners"].append({"name": "second", "address": "127.0.0.1:0", "default_environment": "staging"})
        _write(fd, cfg)
        _reload_and_wait(fd, 2)
        second = fd.read_ports()["second"]
        with Client(second) as on_second:
            assert on_second.request("GET", "/p/m/2").headers.get("X-Upstream") == "stage"
            # The main listener's settings change: new connections get them, the socket stays.
            cfg["listeners"][0]["default_environment"] = "staging"
            _write(fd, cfg)
            _reload_and_wait(fd, 3)
            assert fd.read_ports()["main"] == fd.port
            assert request(fd.port, "GET", "/p/m/3").headers.get("X-Upstream") == "stage"
            # The second listener goes: no new connection there, the one open keeps working.
            del cfg["listeners"][1]
            _write(fd, cfg)
            _reload_and_wait(fd, 4)
            assert "second" not in fd.read_ports()
            time.sleep(0.2)
            try:
                refused = Client(second, timeout=2)
                refused.send(b"GET /p/m/x HTTP/1.1\r\nHost: h\r\n\r\n")
                closed, _ = refused.wait_closed(2)
                assert closed, "the removed listener still accepts"
            except OSError:
                pass  # refused at connect: as expected
            assert on_second.request("GET", "/p/m/4").status == 200
        assert kept.request("GET", "/p/m/5").status == 200, "a connection of the first configuration"


def test_a_listener_on_a_port_in_use_refuses_the_whole_reload(frontdoor, upstreams):
    import socket
    a, b = upstreams("a"), upstreams("b")
    cfg = make_config([manifest("p", "m", [a])])
    fd = frontdoor(cfg)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        cfg["manifests"] = [manifest("p", "m", [b])]
        cfg["listeners"].append({"name": "taken", "address": "127.0.0.1:%d" % holder.getsockname()[1],
                                 "default_environment": "production"})
        _write(fd, cfg)
        fd.signal(signal.SIGHUP)
        assert _wait_for_log(fd, "reload refused: listener taken: cannot listen on"), fd.stderr()
        assert request(fd.port, "GET", "/p/m/x").headers.get("X-Upstream") == "a", "nothing changed"
    finally:
        holder.close()


def test_max_connections_changed_back_to_automatic_needs_a_restart_and_says_so(frontdoor, upstreams):
    # 0 (automatic) was resolved at start; a file that still says what the start file said keeps
    # the resolved value silently, but one that removes a configured limit changes it.
    cfg = make_config([manifest("p", "m", [upstreams("a")])])
    cfg["server"]["max_connections"] = 100
    cfg["admin"] = {"address": "127.0.0.1:0"}
    fd = frontdoor(cfg, listeners=("main", "admin"))
    admin = fd.ports["admin"]
    _write(fd, cfg)
    status, body = _post(admin, "/reload")
    assert status == 200 and json.loads(body)["restart_needed"] == [], body
    cfg["server"]["max_connections"] = 0
    _write(fd, cfg)
    status, body = _post(admin, "/reload")
    assert status == 200 and json.loads(body)["restart_needed"] == ["server.max_connections"], body
    del cfg["server"]["max_connections"]  # absent: the same as 0
    _write(fd, cfg)
    status, body = _post(admin, "/reload")
    assert status == 200 and json.loads(body)["restart_needed"] == ["server.max_connections"], body
