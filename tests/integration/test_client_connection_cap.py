"""server.max_connections_per_client: one client (an address; behind PROXY protocol, the one the header
names) cannot hold more connections than its share, whatever it does with them, and every way a
connection ends gives its place back."""
import time

from fdtest import Client, ConnectionClosed, build_request, make_config, manifest


def _config(upstream, cap, workers=2, **listener):
    lst = {"name": "main", "address": "127.0.0.1:0", "default_environment": "production"}
    lst.update(listener)
    return make_config([manifest("p", "m", [upstream])], listeners=[lst],
                       server={"workers": workers, "max_connections_per_client": cap},
                       timeouts={"client_header": "1s"})


def _refused(port, source="127.0.0.1", prefix=b""):
    """True when a new connection from `source` is closed without an answer (it may take the request)."""
    with Client(port, timeout=3, source=source) as c:
        try:
            c.send(prefix + build_request("GET", "/p/m/try"))
            r = c.read_response()
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            return True
        assert r.status == 200, r
        return False


def _served_within(port, seconds, source="127.0.0.1", prefix=b""):
    """A new connection from `source` is served within `seconds` (the daemon sees an ending first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _refused(port, source, prefix):
            return True
        time.sleep(0.05)
    return False


def test_a_client_over_its_share_is_closed_at_accept_and_other_clients_are_served(frontdoor, upstream):
    fd = frontdoor(_config(upstream, 2))
    held = [Client(fd.port, timeout=3), Client(fd.port, timeout=3)]
    try:
        # Keep-alive, then idle between requests (parked): still this client's connections.
        for c in held:
            assert c.request("GET", "/p/m/held").status == 200
        assert _refused(fd.port), "a third connection of the same client was served"
        assert _refused(fd.port), "and a fourth"
        assert not _refused(fd.port, source="127.0.0.2"), "another client was refused"
        for c in held:  # the held ones were not what made room
            assert c.request("GET", "/p/m/again").status == 200
        # Parked, resumed for a request, parked again: still counted.
        assert _refused(fd.port), "a connection lost its place in its client's count between requests"
        figures = fd.metrics()
        assert figures["connections_refused_per_client"] == 3, figures
        assert "127.0.0.1 has server.max_connections_per_client (2) connections open" in fd.logs()
        held.pop().close()
        assert _served_within(fd.port, 3), "a closed connection's place did not come back"
    finally:
        for c in held:
            c.close()
    assert upstream.request_list()[-1].target == "/p/m/try"


def test_every_way_a_connection_ends_gives_its_place_back(frontdoor, upstream):
    fd = frontdoor(_config(upstream, 1, workers=1))
    endings = {
        "closed before a request": lambda c: None,
        "closed after a keep-alive request": lambda c: c.request("GET", "/p/m/a"),
        "Connection: close": lambda c: c.request("GET", "/p/m/b", [("Connection", "close")]),
        "a bad request (400, closed by the proxy)": lambda c: (c.send(b"BAD\x01 / HTTP/1.1\r\n\r\n"),
                                                               c.read_response()),
        "a head that never ends (408 after client_header)": lambda c: (c.send(b"GET /p/m/slow HTTP/1.1\r\n"),
                                                                        c.wait_closed(3)),
    }
    for name, ending in endings.items():
        with Client(fd.port, timeout=3) as c:
            ending(c)
        assert _served_within(fd.port, 3), "after %s, the client's place did not come back" % name
    # At the end, nothing is left counted: the one share is free.
    with Client(fd.port, timeout=3) as c:
        assert c.request("GET", "/p/m/last").status == 200
        assert _refused(fd.port), "the cap no longer applies"


def test_behind_proxy_protocol_the_client_is_the_address_the_header_names(frontdoor, upstream):
    fd = frontdoor(_config(upstream, 1, proxy_protocol=True))
    first = Client(fd.port, timeout=3)
    try:
        first.send(b"PROXY TCP4 192.0.2.9 127.0.0.1 51000 80\r\n" + build_request("GET", "/p/m/1"))
        assert first.read_response().status == 200
        assert _refused(fd.port, prefix=b"PROXY TCP4 192.0.2.9 127.0.0.1 51001 80\r\n"), \
            "a second connection of 192.0.2.9 was served"
        # The balancer's own address is not the client: another client through it is served.
        assert not _refused(fd.port, prefix=b"PROXY TCP4 192.0.2.10 127.0.0.1 51002 80\r\n")
        assert "192.0.2.9 has server.max_connections_per_client (1)" in fd.logs()
    finally:
        first.close()
    assert _served_within(fd.port, 3, prefix=b"PROXY TCP4 192.0.2.9 127.0.0.1 51003 80\r\n"), \
        "the closed connection's place did not come back"


def test_a_trusted_proxy_carries_many_clients_and_is_not_capped(frontdoor, upstream):
    fd = frontdoor(_config(upstream, 1, trusted_proxies=["127.0.0.1/32"]))
    held = [Client(fd.port, timeout=3) for _ in range(3)]
    try:
        for c in held:
            assert c.request("GET", "/p/m/x", [("X-Forwarded-For", "198.51.100.1")]).status == 200
        assert not _refused(fd.port, source="127.0.0.1")
        # Not a trusted proxy: capped.
        with Client(fd.port, timeout=3, source="127.0.0.3") as other:
            assert other.request("GET", "/p/m/y").status == 200
            assert _refused(fd.port, source="127.0.0.3")
    finally:
        for c in held:
            c.close()


def test_a_reload_sets_the_cap_for_new_connections(frontdoor, upstream):
    fd = frontdoor(_config(upstream, 0))
    assert not _refused(fd.port)
    fd.reload(_config(upstream, 1))  # the listener (127.0.0.1:0, "main") keeps its port
    # The workers take the new settings just after the log line: a connection accepted before
    # that is not counted, so try until one is.
    deadline, capped = time.monotonic() + 3, False
    while not capped and time.monotonic() < deadline:
        with Client(fd.port, timeout=3) as c:
            assert c.request("GET", "/p/m/1").status == 200
            capped = _refused(fd.port)
    assert capped, "the cap set by the reload did not apply"
    assert _served_within(fd.port, 3)
