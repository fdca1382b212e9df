"""Client timeouts (slowloris, idle keep-alive) and server.max_connections."""
import socket
import time

from fdtest import Action, Client, ConnectionClosed, make_config, manifest, request


def test_slowloris_cut_off_by_client_header_timeout(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts={"client_header": "1s"}))
    head = b"GET /p/m/slow HTTP/1.1\r\nHost: fd.test\r\nX-Padding: " + b"z" * 100
    with Client(fd.port, timeout=5) as c:
        t0 = time.monotonic()
        closed_at = None
        response = b""
        for i in range(len(head)):  # bounded: at most ~len(head) * 0.2 s, but we stop at 4 s
            if time.monotonic() - t0 > 4:
                break
            try:
                c.sock.sendall(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            closed, extra = c.wait_closed(0.2)
            response += extra
            if closed:
                closed_at = time.monotonic()
                break
        assert closed_at is not None, "a slowloris client was still connected after %.1f s" % (
            time.monotonic() - t0)
        elapsed = closed_at - t0
        assert 0.8 <= elapsed <= 2.0, "slowloris cut after %.2f s, expected about 1 s" % elapsed
        if response:
            assert response.startswith(b"HTTP/1.1 408 "), "only a 408 may precede the close: %r" % response
    assert upstream.request_list() == []
    # The operator sees it: counted as a 408 client_timeout (and logged, as any request).
    figures = fd.metrics()
    assert figures["errors"].get("client_timeout") == 1 and figures["responses"]["4xx"] == 1, figures


def test_idle_keep_alive_connection_closed_after_client_idle(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               timeouts={"client_idle": "1s", "client_header": "5s"}))
    with Client(fd.port, timeout=5) as c:
        assert c.request("GET", "/p/m/1").status == 200
        t0 = time.monotonic()
        closed, extra = c.wait_closed(3)
        elapsed = time.monotonic() - t0
        assert closed, "idle keep-alive connection still open after 3 s (client_idle: 1s)"
        assert 0.8 <= elapsed <= 2.0, "idle connection closed after %.2f s, expected about 1 s" % elapsed
        assert extra == b"" or extra.startswith(b"HTTP/1.1 408 "), extra


def test_keep_alive_connection_usable_before_client_idle(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               timeouts={"client_idle": "3s", "client_header": "1s"}))
    with Client(fd.port, timeout=5) as c:
        assert c.request("GET", "/p/m/1").status == 200
        # Idle longer than client_header but shorter than client_idle: still open.
        c.assert_open(1.5)
        assert c.request("GET", "/p/m/2").status == 200


def test_slow_but_steady_body_is_not_cut(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               timeouts={"client_header": "1s", "client_body": "1s"}))
    with Client(fd.port, timeout=5) as c:
        c.send(b"POST /p/m/steady HTTP/1.1\r\nHost: fd.test\r\nContent-Length: 6\r\n\r\n")
        for b in b"abcdef":  # 6 x 0.3 s = 1.8 s total, but never 1 s without a byte
            time.sleep(0.3)
            c.send(bytes([b]))
        r = c.read_response()
    assert r.status == 200
    assert upstream.request_list()[0].body == b"abcdef"


def test_max_connections_reclaims_the_longest_idle_then_refuses(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"max_connections": 2, "workers": 1}))
    first, second = Client(fd.port), Client(fd.port)
    try:
        assert first.request("GET", "/p/m/1").status == 200
        assert second.request("GET", "/p/m/2").status == 200
        # Full of idle keep-alive connections: a new client is served, the longest idle one goes.
        with Client(fd.port, timeout=3) as third:
            assert third.request("GET", "/p/m/3").status == 200
            first.assert_closed(3)
            assert second.request("GET", "/p/m/4").status == 200, "the younger idle connection stays"
        assert fd.metrics()["connections_reclaimed"] == 1
    finally:
        first.close()
        second.close()


def test_max_connections_refuses_when_none_is_idle(frontdoor, upstream):
    upstream.set_script(Action(delay_ms=1500))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"max_connections": 2, "workers": 1}))
    busy = [Client(fd.port, timeout=5), Client(fd.port, timeout=5)]
    try:
        for c in busy:
            c.send(b"GET /p/m/slow HTTP/1.1\r\nHost: fd.test\r\n\r\n")
        upstream.wait_requests(2, timeout=3)
        third = Client(fd.port, timeout=3)
        try:
            try:
                third.send(b"GET /p/m/3 HTTP/1.1\r\nHost: fd.test\r\n\r\n")
                r = third.read_response()
            except socket.timeout:
                raise AssertionError("third connection neither closed nor answered within 3 s")
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
                r = None
            assert r is None, "third connection was served while both others were busy: %r" % r
        finally:
            third.close()
        for c in busy:
            assert c.read_response().status == 200, "the busy connections were not the ones to go"
        assert fd.metrics()["connections_rejected"] >= 1
    finally:
        for c in busy:
            c.close()


def test_max_connections_defaults_to_the_descriptor_limit(frontdoor, upstream):
    cfg = make_config([manifest("p", "m", [upstream])])
    del cfg["server"]["max_connections"]
    fd = frontdoor(cfg)
    assert request(fd.port, "GET", "/p/m/x").status == 200
    assert "server.max_connections: " in fd.stderr() and "file descriptors" in fd.stderr(), fd.stderr()


def test_reclaiming_a_parked_connection_keeps_the_count_true(frontdoor, upstream):
    """After idle connections were reclaimed and every client left, the process admits as many new
    clients as before: the connection count did not drift."""
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"max_connections": 2, "workers": 1}))
    for round_ in range(3):
        first, second = Client(fd.port), Client(fd.port)
        assert first.request("GET", "/p/m/a").status == 200
        assert second.request("GET", "/p/m/b").status == 200
        with Client(fd.port) as third:  # full: the longest idle (first) makes room
            assert third.request("GET", "/p/m/c").status == 200
            first.assert_closed(3)
        first.close()
        second.close()
        time.sleep(0.3)  # the server notices both leave
    m = fd.metrics()
    assert m["connections_reclaimed"] == 3, m  # one per round: never a young one
    # Two clients fit again without reclaiming anything.
    a, b = Client(fd.port), Client(fd.port)
    assert a.request("GET", "/p/m/x").status == 200 and b.request("GET", "/p/m/y").status == 200
    assert a.request("GET", "/p/m/x2").status == 200, "a young connection was reclaimed: the count drifted"
    assert fd.metrics()["connections_reclaimed"] == 3
    a.close()
    b.close()


def test_a_connection_whose_request_was_slow_is_still_reclaimable(frontdoor, upstream):
    """A request that waited (a watch read was armed for a hang-up) left its connection neither
    parked nor on the idle list: a few slow requests pinned max_connections for client_idle."""
    upstream.set_script(Action(delay_ms=500))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"max_connections": 2, "workers": 1}))
    slow = [Client(fd.port, timeout=5), Client(fd.port, timeout=5)]
    try:
        for c in slow:
            c.send(b"GET /p/m/slow HTTP/1.1\r\nHost: fd.test\r\n\r\n")
        for c in slow:
            assert c.read_response().status == 200
        upstream.set_script(Action())
        with Client(fd.port, timeout=3) as third:
            assert third.request("GET", "/p/m/3").status == 200
            # The longest idle went: whichever slow response finished first.
            closed = [c.wait_closed(3 if i == 0 else 0.5)[0] for i, c in enumerate(slow)]
            assert sorted(closed) == [False, True], closed
        assert fd.metrics()["connections_reclaimed"] == 1
    finally:
        for c in slow:
            c.close()


def test_silent_connections_are_not_kept_over_keep_alive_clients(frontdoor, upstream):
    """The oldest idle connection goes, whichever list it is on: two silent connects made first must
    not outlive a client that was served (which parked after its request)."""
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"max_connections": 3, "workers": 1}))
    silent = [socket.create_connection(("127.0.0.1", fd.port), timeout=5) for _ in range(2)]
    served = Client(fd.port, timeout=5)
    try:
        time.sleep(0.1)
        assert served.request("GET", "/p/m/1").status == 200
        time.sleep(0.1)  # parked
        with Client(fd.port, timeout=3) as newcomer:
            assert newcomer.request("GET", "/p/m/2").status == 200
        silent[0].settimeout(3)
        assert silent[0].recv(1) == b"", "the oldest (silent) connection should have been closed"
        assert served.request("GET", "/p/m/3").status == 200, "the served client should have stayed"
    finally:
        served.close()
        for s in silent:
            s.close()


def test_a_new_connection_has_client_header_for_its_first_request(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts={"client_header": "1s", "client_idle": "30s"}))
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as silent:
        t0 = time.monotonic()
        try:
            assert silent.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 3, "a connection that never spoke waited client_idle"
    assert fd.metrics()["silent_connections_closed"] == 1
    # A served keep-alive connection waits client_idle for its next request, not client_header.
    with Client(fd.port, timeout=5) as c:
        assert c.request("GET", "/p/m/1").status == 200
        time.sleep(1.5)
        assert c.request("GET", "/p/m/2").status == 200


def test_a_client_gone_after_its_whole_body_is_noticed(frontdoor, upstream):
    """A POST whose body came after its head, then the client left: the upstream request must be
    cancelled (as for a GET), not held until upstream_response and counted as its timeout."""
    upstream.set_script(Action(delay_ms=4000))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts={"upstream_response": "6s"}))
    with Client(fd.port, timeout=5) as c:
        c.send(b"POST /p/m/fire HTTP/1.1\r\nHost: fd.test\r\nContent-Length: 5\r\n\r\n")
        time.sleep(0.1)
        c.send(b"hello")
        upstream.wait_requests(1, timeout=3)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(e["in_flight"] for e in fd.metrics()["endpoints"]):
        time.sleep(0.1)
    figures = fd.metrics()
    assert not any(e["in_flight"] for e in figures["endpoints"]), figures["endpoints"]
    assert figures["errors"].get("client_closed", 0) >= 1 and "upstream_timeout" not in figures["errors"], figures["errors"]


def _stalled_post(c):
    """A POST whose body stops after 10 of its 100 bytes; its answer."""
    c.send(b"POST /p/m/stalled HTTP/1.1\r\nHost: fd.test\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    return c.read_response()


def test_a_body_too_slow_gets_a_408_not_a_reset(frontdoor, upstream):
    # The exchange was cut: the client's connection was reset, with no answer and no reason.
    fd = frontdoor(make_config([manifest("p", "m", [upstream])],
                               timeouts={"client_header": "1s", "client_body": "1s"}))
    with Client(fd.port, timeout=5) as c:
        started = time.monotonic()
        r = _stalled_post(c)
        assert r.status == 408, r
        assert r.headers.get("Connection") == "close"
        assert 0.9 < time.monotonic() - started < 3
        c.assert_closed(3)
    figures = fd.metrics()
    assert figures["errors"].get("client_timeout") == 1 and figures["responses"]["4xx"] == 1, figures
    assert "upstream_timeout" not in figures["errors"], figures["errors"]


def test_request_total_passing_while_the_body_comes_is_its_504_and_no_failure_of_the_upstream(frontdoor, upstream):
    # It was a 408 (the docs say 504); and the client's slowness must not open the endpoint's breaker.
    fd = frontdoor(make_config([manifest("p", "m", [upstream], resilience={"circuit_breaker": {"consecutive_failures": 1}})],
                               timeouts={"client_body": "5s", "request_total": "1s"}, server={"workers": 1}))
    with Client(fd.port, timeout=5) as c:
        r = _stalled_post(c)
        assert r.status == 504 and b"total time limit" in r.body, r
    assert fd.metrics()["errors"].get("request_timeout") == 1
    assert request(fd.port, "GET", "/p/m/after").status == 200, "the breaker opened on the client's slowness"
