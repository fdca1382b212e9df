"""Graceful shutdown: SIGTERM drains requests in flight, refuses new connections, exits 0."""
import signal
import threading
import time

from fdtest import (Action, Client, connection_refused, make_config, manifest, read_until_closed,
                    slow_reader_that_pipelines)


def _slow_requests(port, n, results):
    def one(i):
        try:
            with Client(port, timeout=10) as c:
                r = c.request("GET", "/p/m/slow/%d" % i)
                results[i] = (r.status, r.body)
        except Exception as e:  # recorded, asserted by the test
            results[i] = ("error", repr(e))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def test_sigterm_drains_requests_in_flight(frontdoor, upstream):
    upstream.set_script(lambda req: Action(delay_ms=1000, body=("done " + req.target).encode()))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               server={"workers": 2, "drain_timeout": "10s"}))
    results = {}
    threads = _slow_requests(fd.port, 5, results)
    got = upstream.wait_requests(5, timeout=3)
    assert len(got) == 5, "only %d of 5 requests reached the upstream" % len(got)

    t0 = time.monotonic()
    fd.signal(signal.SIGTERM)
    time.sleep(0.2)
    assert connection_refused(fd.port, timeout=2), "a new connection was served after SIGTERM"

    for t in threads:
        t.join(10)
    for i in range(5):
        assert results.get(i) == (200, ("done /p/m/slow/%d" % i).encode()), results
    rc = fd.wait(10)
    elapsed = time.monotonic() - t0
    assert rc == 0, "exit code %r after SIGTERM" % rc
    assert elapsed < 5, "drain took %.1f s for requests that needed about 1 s" % elapsed
    # Only the 5 in-flight requests reached the upstream (the probe after SIGTERM did not).
    assert len(upstream.request_list()) == 5


def test_sigterm_closes_idle_keep_alive_connections(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"drain_timeout": "10s"}))
    with Client(fd.port) as c:
        assert c.request("GET", "/p/m/1").status == 200
        t0 = time.monotonic()
        fd.signal(signal.SIGTERM)
        c.assert_closed(3)
        rc = fd.wait(5)
        assert rc == 0
        assert time.monotonic() - t0 < 3, "an idle keep-alive connection held the drain"


def test_drain_timeout_bounds_shutdown(frontdoor, upstream):
    upstream.set_script(Action(mode="never"))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               server={"drain_timeout": "1s"}, timeouts={"upstream_response": "30s"}))
    results = {}
    threads = _slow_requests(fd.port, 1, results)
    assert len(upstream.wait_requests(1, timeout=3)) == 1
    t0 = time.monotonic()
    fd.signal(signal.SIGTERM)
    rc = fd.wait(6)
    elapsed = time.monotonic() - t0
    assert rc == 0, "exit code %r (None = still running after 6 s)" % rc
    assert 0.8 <= elapsed <= 3, "exited %.2f s after SIGTERM with drain_timeout 1s" % elapsed
    for t in threads:
        t.join(5)
    # The stuck request could not complete: the client saw its connection closed or a 5xx, never a 200.
    status = results.get(0)
    assert status is not None and status[0] != 200, status


def test_sigint_also_drains(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    with Client(fd.port) as c:
        assert c.request("GET", "/p/m/1").status == 200
    fd.signal(signal.SIGINT)
    assert fd.wait(5) == 0


def test_a_response_in_flight_at_sigterm_reaches_a_client_that_pipelined_more(frontdoor, upstream):
    # The drain ends the connection after the answer in flight; the client's pipelined requests wait
    # unread. Closing over them reset the connection and cut the answer's unsent megabytes.
    body = b"y" * (8 << 20)
    upstream.set_script(Action(delay_ms=1000, body=body))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"drain_timeout": "20s"},
                               timeouts={"upstream_response": "20s"}))
    with slow_reader_that_pipelines(fd.port, "/p/m/big", then=lambda: fd.signal(signal.SIGTERM)) as sock:
        time.sleep(1.5)  # a slow reader
        data, end = read_until_closed(sock, 20)
    head, _, got = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    assert len(got) == len(body), "%d of %d body bytes, then %s" % (len(got), len(body), end)
    assert fd.wait(20) == 0
