"""Client timeouts (slowloris, idle keep-alive) and server.max_connections."""
import socket
import time

from fdtest import Client, ConnectionClosed, make_config, manifest, request


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


def test_max_connections(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"max_connections": 2, "workers": 2}))
    first, second = Client(fd.port), Client(fd.port)
    try:
        assert first.request("GET", "/p/m/1").status == 200
        assert second.request("GET", "/p/m/2").status == 200
        third = Client(fd.port, timeout=3)
        try:
            try:
                third.send(b"GET /p/m/3 HTTP/1.1\r\nHost: fd.test\r\n\r\n")
                r = third.read_response()
            except socket.timeout:
                raise AssertionError("third connection neither closed nor answered within 3 s")
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
                r = None
            assert r is None or r.status == 503, "third connection was served: %r" % r
        finally:
            third.close()
        assert [q.target for q in upstream.request_list()] == ["/p/m/1", "/p/m/2"]
        # The two admitted connections still work.
        assert first.request("GET", "/p/m/1b").status == 200
    finally:
        first.close()
    # A freed slot is available again.
    deadline = time.monotonic() + 3
    status = None
    while time.monotonic() < deadline:
        try:
            status = request(fd.port, "GET", "/p/m/4", timeout=2).status
        except Exception:
            status = None
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200, "no connection admitted after one of the two was closed"
    second.close()
