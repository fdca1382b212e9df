"""Access log: one JSON line per request with request_id, status, upstream (and friends)."""
import json
import os
import time

import pytest

from fdtest import Client, free_port, make_config, manifest, request


def _read_json_lines(path, want, timeout=3.0):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                lines = [l for l in f.read().splitlines() if l.strip()]
            if len(lines) >= want:
                break
        time.sleep(0.05)
    return [json.loads(l) for l in lines]


def test_json_access_log(frontdoor, upstream, tmp_path):
    log = str(tmp_path / "access.log")
    dead = "127.0.0.1:%d" % free_port()
    fd = frontdoor(make_config([manifest("p", "m", [upstream]), manifest("p", "dead", [dead])],
                               logging={"access_log": {"destination": log, "format": "json"}}))
    with Client(fd.port) as c:
        ok = c.request("GET", "/p/m/ok?x=1", headers=[("X-Request-Id", "log-test-1")])
        assert ok.status == 200
        posted = c.request("POST", "/p/m/post", body=b"12345")
        assert posted.status == 200
        missing = c.request("GET", "/nope/none/x")
        assert missing.status == 404
        bad = c.request("GET", "/p/dead/x")
        assert bad.status == 502
    entries = _read_json_lines(log, 4)
    assert len(entries) == 4, entries
    by_id = {e.get("request_id"): e for e in entries}
    for e in entries:
        for key in ("request_id", "status", "upstream", "method", "path"):
            assert key in e, "access log entry without %r: %r" % (key, e)
        assert any(k in e for k in ("duration_ms", "duration")), e
        assert "bytes_sent" in e, e

    e = by_id["log-test-1"]
    assert e["status"] == 200
    assert e["method"] == "GET"
    assert e["path"].startswith("/p/m/ok")
    assert e["upstream"] == upstream.address

    e = by_id[posted.headers.get("X-Request-Id")]
    assert (e["status"], e["method"], e["upstream"]) == (200, "POST", upstream.address)

    e = by_id[missing.headers.get("X-Request-Id")]
    assert e["status"] == 404
    assert e["upstream"] in ("", "-", None), e

    e = by_id[bad.headers.get("X-Request-Id")]
    assert e["status"] == 502
    assert e["upstream"] == dead


def test_access_log_off_writes_nothing_to_stdout(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    assert request(fd.port, "GET", "/p/m/1", headers=[("X-Request-Id", "quiet-1")]).status == 200
    assert fd.stop(5) == 0
    assert "quiet-1" not in fd.stdout()


def test_a_stalled_stdout_never_stalls_requests(frontdoor, upstream):
    """A log collector that stops reading: stdout's pipe fills, lines are dropped (and counted),
    requests go on at full speed."""
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               logging={"access_log": {"destination": "stdout", "format": "json"}}),
                   stdout_pipe=True)  # and never read
    target = "/p/m/" + "x" * 1000
    t0 = time.monotonic()
    with Client(fd.port) as c:
        for i in range(6000):
            assert c.request("GET", target).status == 200
    elapsed = time.monotonic() - t0
    assert elapsed < 30, "6000 requests took %.1f s with a stalled log" % elapsed
    m = fd.metrics()
    assert m["access_log_dropped_lines"] > 0, m
    assert m["responses"]["2xx"] == 6000


def test_lines_of_two_workers_never_interleave_on_a_pipe(frontdoor, upstream):
    import threading
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"workers": 2},
                               logging={"access_log": {"destination": "stdout", "format": "json"}}),
                   stdout_pipe=True)
    received = []
    reader = threading.Thread(target=lambda: received.append(fd.proc.stdout.read()), daemon=True)
    reader.start()

    def load(k):
        for _ in range(4):
            with Client(fd.port) as c:  # new connections: both workers take some
                for i in range(300):
                    assert c.request("GET", "/p/m/%d/%s" % (k, "y" * 500)).status == 200

    threads = [threading.Thread(target=load, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fd.stop()
    reader.join(10)
    lines = received[0].decode().splitlines()
    assert len(lines) == 3 * 4 * 300
    for line in lines:
        json.loads(line)  # a line cut by another worker's would not parse


def test_sigusr2_reopens_the_log_file(frontdoor, upstream, tmp_path):
    import signal
    log = tmp_path / "access.log"
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               logging={"access_log": {"destination": str(log), "format": "json"}}))
    assert request(fd.port, "GET", "/p/m/before").status == 200
    assert len(_read_json_lines(str(log), 1)) == 1
    log.rename(tmp_path / "access.log.1")  # what logrotate does
    fd.signal(signal.SIGUSR2)
    deadline = time.monotonic() + 3
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert request(fd.port, "GET", "/p/m/after").status == 200
    entries = _read_json_lines(str(log), 1)
    assert [e["path"] for e in entries] == ["/p/m/after"]
    assert [e["path"] for e in _read_json_lines(str(tmp_path / "access.log.1"), 1)] == ["/p/m/before"]


def test_a_text_line_keeps_its_quotes_whatever_the_path(frontdoor, upstream, tmp_path):
    # Without a manifest the route's parts are the client's path segments; they went into the text
    # line raw, so a '"' in them broke quote-aware parsers (the target is quoted and cleaned).
    log = str(tmp_path / "access.log")
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               logging={"access_log": {"destination": log, "format": "text"}}))
    assert request(fd.port, "GET", '/x"_200_9_9_fake"/m').status == 404
    deadline = time.monotonic() + 3
    text = ""
    while time.monotonic() < deadline and "404" not in text:
        text = open(log).read() if os.path.exists(log) else ""
        time.sleep(0.05)
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, text
    assert lines[0].count('"') == 2, lines[0]  # the quoted request line only


def test_lines_a_full_disk_refuses_are_counted_and_logged(frontdoor, upstream):
    # /dev/full: every write fails with ENOSPC. The lost lines were neither counted nor logged.
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               logging={"access_log": {"destination": "/dev/full", "format": "json"}}))
    for i in range(5):
        assert request(fd.port, "GET", "/p/m/%d" % i).status == 200
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and "write failed" not in fd.stderr():
        time.sleep(0.1)  # the access log is flushed every 100 ms
    assert "No space left on device" in fd.stderr(), fd.stderr()[-2000:]
    assert fd.metrics()["access_log_dropped_lines"] == 5
    assert request(fd.port, "GET", "/p/m/after").status == 200  # requests never wait on the log


def test_a_reopen_that_fails_is_said_and_a_fifo_without_reader_does_not_hang_the_start(frontdoor, upstream, tmp_path):
    # SIGUSR2 with the log's directory gone logged "reopening" and nothing else: the lines went on
    # to the moved (soon deleted) file. A FIFO destination with no reader blocked the start for good.
    import signal
    logdir = tmp_path / "logs"
    logdir.mkdir()
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               logging={"access_log": {"destination": str(logdir / "access.log"), "format": "json"}}))
    assert request(fd.port, "GET", "/p/m/1").status == 200
    logdir.rename(tmp_path / "logs.old")
    fd.signal(signal.SIGUSR2)
    said = "access log: cannot reopen %s: No such file or directory; still writing to the file opened before" % (
        logdir / "access.log")
    deadline = time.monotonic() + 3
    while said not in fd.logs() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert said in fd.logs()
    assert request(fd.port, "GET", "/p/m/2").status == 200
    assert [e["path"] for e in _read_json_lines(str(tmp_path / "logs.old" / "access.log"), 2)] == ["/p/m/1", "/p/m/2"]

    from fdtest import Frontdoor
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    blocked = Frontdoor(str(tmp_path), "fifo")
    started = time.monotonic()
    with pytest.raises(Exception):
        blocked.start(make_config([manifest("p", "m", [upstream])], logging={"access_log": {"destination": str(fifo)}}))
    blocked.stop(timeout=5)
    assert time.monotonic() - started < 5
    assert "cannot open access log %s: No such device or address" % fifo in blocked.logs()
