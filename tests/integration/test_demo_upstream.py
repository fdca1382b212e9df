"""deploy/dev/demo_upstream.py: answers with JSON + X-Upstream, exits 0 on SIGTERM (no frontdoor needed)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fdtest import Client, free_port

SCRIPT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       "..", "..", "deploy", "dev", "demo_upstream.py"))


@pytest.fixture
def demo(tmp_path):
    port = free_port()
    err = open(tmp_path / "demo.stderr", "wb")
    proc = subprocess.Popen([sys.executable, SCRIPT, "--port", str(port), "--name", "a"],
                            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            Client(port, timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "demo.stderr").read_text()
            time.sleep(0.05)
    yield proc, port
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    err.close()


def test_demo_upstream_answers_and_stops_on_sigterm(demo):
    proc, port = demo
    with Client(port) as c:
        r = c.request("GET", "/demo/echo/hello?x=1", headers=[("X-Test", "yes")])
        assert r.status == 200
        assert r.headers.get("X-Upstream") == "a"
        doc = json.loads(r.body)
        assert doc["upstream"] == "a"
        assert doc["method"] == "GET"
        assert doc["path"] == "/demo/echo/hello?x=1"
        assert ["X-Test", "yes"] in doc["headers"]
        r = c.request("POST", "/p", body=b"12345")  # same connection: keep-alive
        assert r.status == 200 and json.loads(r.body)["method"] == "POST"
        r = c.request("HEAD", "/h")
        assert r.status == 200 and r.body == b""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
