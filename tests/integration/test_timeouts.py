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
