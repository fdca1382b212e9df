"""Endpoints named by host name are resolved again on an interval: a headless Service's pods come
and go. The daemon runs with its own /etc/hosts (a private mount namespace, bind-mounted), which the
test rewrites: the real resolver (glibc's files backend) answers, nothing is mocked."""
import os
import shutil
import subprocess
import time

import pytest

from fdtest import ScriptedUpstream, make_config, request

NAME = "fd-test-upstream.internal"


def _can_bind_mount():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    return r.returncode == 0


pytestmark = pytest.mark.skipif(not _can_bind_mount(),
                                reason="needs root and unshare -m (a private /etc/hosts for the daemon)")


def _hosts(path, *addresses):
    with open(path, "w") as f:  # in place: the bind mount keeps the inode
        f.write("127.0.0.1 localhost\n")
        for a in addresses:
            f.write("%s %s\n" % (a, NAME))


def _service_config(port, resolve_interval):
    """Every request to NAME:port (a headless Service), resolved again every `resolve_interval`."""
    return make_config([{"project": "*", "module": "*", "environment": "*",
                         "endpoints": [{"address": "%s:%d" % (NAME, port)}]}],
                       upstream_pool={"resolve_interval": resolve_interval})


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def private_hosts(tmp_path, monkeypatch):
    hosts = str(tmp_path / "hosts")
    _hosts(hosts)
    real = os.path.abspath(os.environ.get("FRONTDOOR_BIN", ""))
    wrapper = str(tmp_path / "frontdoor-with-hosts")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec unshare -m -- sh -c 'mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"' "
                "sh %s %s \"$@\"\n" % (hosts, real))
    os.chmod(wrapper, 0o755)
    monkeypatch.setenv("FRONTDOOR_BIN", wrapper)
    return hosts


def test_a_host_name_is_resolved_again_and_its_addresses_come_and_go(frontdoor, private_hosts):
    a = ScriptedUpstream("a", host="127.0.0.2")
    b = ScriptedUpstream("b", port=a.port, host="127.0.0.3")
    try:
        _hosts(private_hosts, "127.0.0.2")
        cfg = _service_config(a.port, "1s")
        fd = frontdoor(cfg)
        assert {request(fd.port, "GET", "/x").headers.get("X-Upstream") for _ in range(6)} == {"a"}
        # A second pod: both take requests once the name is resolved again.
        _hosts(private_hosts, "127.0.0.2", "127.0.0.3")
        assert _wait(lambda: request(fd.port, "GET", "/x").headers.get("X-Upstream") == "b", 5)
        assert {request(fd.port, "GET", "/x").headers.get("X-Upstream") for _ in range(6)} == {"a", "b"}
        b_connections = {r.conn_id for r in b.request_list()}
        # The first pod goes: everything to the second, on the pooled connection it already had.
        _hosts(private_hosts, "127.0.0.3")
        assert _wait(lambda: {request(fd.port, "GET", "/x").headers.get("X-Upstream") for _ in range(4)} == {"b"}, 5)
        assert {r.conn_id for r in b.request_list()} == b_connections, "the remaining endpoint's state was kept"
        assert "endpoint %s:%d: 127.0.0.2, 127.0.0.3 -> 127.0.0.3" % (NAME, a.port) in fd.stderr()
        # The name stops resolving (a DNS outage): the last addresses keep serving.
        _hosts(private_hosts)
        assert _wait(lambda: "its last addresses stay" in fd.stderr(), 5)
        assert {request(fd.port, "GET", "/x").headers.get("X-Upstream") for _ in range(4)} == {"b"}
    finally:
        a.stop()
        b.stop()


def test_a_stored_manifests_host_name_is_resolved_again(frontdoor, private_hosts, tmp_path):
    from fdtest import PostgresServer, run_cli, to_yaml
    a = ScriptedUpstream("a", host="127.0.0.2")
    b = ScriptedUpstream("b", port=a.port, host="127.0.0.3")
    pg = PostgresServer().start()
    try:
        _hosts(private_hosts, "127.0.0.2")
        cfg = make_config([], upstream_pool={"resolve_interval": "1s"}, postgres={"dsn": pg.dsn})
        cli_cfg = str(tmp_path / "cli.yaml")
        with open(cli_cfg, "w") as f:
            f.write(to_yaml(cfg))
        put = str(tmp_path / "put.yaml")
        with open(put, "w") as f:
            f.write(to_yaml({"manifests": [{"project": "shop", "module": "*",
                                            "endpoints": [{"address": "%s:%d" % (NAME, a.port)}]}]}))
        for args in (["manifests", "migrate", "-c", cli_cfg], ["manifests", "put", put, "-c", cli_cfg]):
            r = run_cli(args)
            assert r.returncode == 0, r.stderr
        fd = frontdoor(cfg)
        assert _wait(lambda: request(fd.port, "GET", "/shop/cart/1").headers.get("X-Upstream") == "a", 5)
        _hosts(private_hosts, "127.0.0.3")
        assert _wait(lambda: request(fd.port, "GET", "/shop/cart/1").headers.get("X-Upstream") == "b", 5)
        assert "endpoints re-resolved to other addresses" in fd.stderr()
    finally:
        a.stop()
        b.stop()
        pg.cleanup()


def test_addresses_that_go_leave_no_state_behind_and_their_ids_serve_the_next_ones(frontdoor, private_hosts):
    """A headless Service rolled over and over: each new pod's address reuses the id of one gone, and
    must get none of its state. The old pods keep running, so a pooled keep-alive connection to one
    of them, handed to its successor, would answer with the old name."""
    pods = []
    try:
        for i in range(5):
            pods.append(ScriptedUpstream("pod%d" % i, port=pods[0].port if pods else 0, host="127.0.0.%d" % (i + 2)))
        port = pods[0].port
        _hosts(private_hosts, "127.0.0.2")
        cfg = _service_config(port, "1s")
        fd = frontdoor(cfg)
        for i, pod in enumerate(pods):
            _hosts(private_hosts, "127.0.0.%d" % (i + 2))
            assert _wait(lambda: request(fd.port, "GET", "/x").headers.get("X-Upstream") == pod.name, 8), \
                "pod%d never took over\n%s" % (i, fd.logs())
            # Every request now reaches this pod, several over one pooled upstream connection.
            assert [request(fd.port, "GET", "/x").headers.get("X-Upstream") for _ in range(8)] == [pod.name] * 8
        # Metrics name only the endpoint listed now: five addresses came, four went.
        names = [e["endpoint"] for e in fd.metrics()["endpoints"]]
        assert names == ["%s:%d@127.0.0.6" % (NAME, port)], names
    finally:
        for p in pods:
            p.stop()


def test_a_reload_during_a_dns_outage_keeps_the_last_addresses_and_resolves_again_after(frontdoor, private_hosts):
    """A reload takes the running config's host names from what they last resolved to: a DNS outage
    neither refuses it nor blocks the control thread (where /health is answered). The names are
    resolved again off that thread right after each reload, even with resolve_interval 0."""
    a = ScriptedUpstream("a", host="127.0.0.2")
    b = ScriptedUpstream("b", port=a.port, host="127.0.0.3")
    try:
        _hosts(private_hosts, "127.0.0.2")
        cfg = _service_config(a.port, "0s")
        fd = frontdoor(cfg)
        assert request(fd.port, "GET", "/x").headers.get("X-Upstream") == "a"
        _hosts(private_hosts)  # the name stops resolving
        cfg["timeouts"] = {"client_idle": "30s"}
        fd.reload(cfg)
        assert "reload refused" not in fd.stderr()
        assert request(fd.port, "GET", "/x").headers.get("X-Upstream") == "a"
        assert _wait(lambda: "its last addresses stay" in fd.stderr(), 5), "not resolved again after the reload"
        # The name comes back with another address: the next reload's background resolution finds it.
        _hosts(private_hosts, "127.0.0.3")
        cfg["timeouts"] = {"client_idle": "31s"}
        fd.reload(cfg)
        assert _wait(lambda: request(fd.port, "GET", "/x").headers.get("X-Upstream") == "b", 5)
    finally:
        a.stop()
        b.stop()
