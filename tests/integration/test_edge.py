"""What a hostile or unusual client (or upstream) can do at the edge, over real sockets: response
header lines kept whole, chunk extensions capped, transfer codings kept, absolute-form targets
rewritten, round robin spread over workers, a second SIGTERM exiting at once."""
import re
import signal
import socket
import time

from fdtest import (Action, Client, build_request, exchange_until_close, make_config, manifest, raw_exchange,
                    request)

TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _assert_well_formed_head(raw_head: bytes):
    lines = raw_head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 "), lines[0]
    for line in lines[1:]:
        if not line:
            continue
        name, sep, _ = line.partition(b":")
        assert sep and TOKEN.match(name), "malformed header line %r in %r" % (line, raw_head)
        assert b"\r" not in line and b"\n" not in line


def test_response_header_lines_are_whole_or_absent(frontdoor, upstreams):
    # Many limits with long names and sticky balancing: more extra header bytes than fit. Whatever
    # does not fit is left out as whole lines; nothing is cut or glued to the next header.
    ups = [upstreams("a"), upstreams("b")]
    m = manifest("*", "*", ups, balancing="sticky", sticky_cookie="fd_pin")
    m["rate_limits"] = [{"name": "m" + "x" * 90 + str(i), "requests_per_second": 1000, "burst": 1000}
                        for i in range(4)]
    cfg = make_config([m])
    cfg["rate_limits"] = [{"name": "n" + "y" * 300, "requests_per_second": 1000, "burst": 1000},
                          {"name": "short", "requests_per_second": 1000, "burst": 1000}]
    cfg["rate_limit_headers"] = "both"
    fd = frontdoor(cfg)
    with Client(fd.port) as c:
        for i in range(3):
            r = c.request("GET", "/p/m/%d" % i)
            assert r.status == 200
            _assert_well_formed_head(r.raw_head)
            assert r.headers.get("X-Request-Id"), r.raw_head
            for cookie in r.headers.get_all("Set-Cookie"):
                assert re.fullmatch(r"fd_pin=[0-9a-f]{16}; Path=/; HttpOnly", cookie), cookie
            for policy in r.headers.get_all("RateLimit-Policy"):
                assert all(re.fullmatch(r'"[a-z]+[0-9]?";q=\d+;w=\d+', item.strip()) for item in policy.split(",")), policy


def test_chunk_extensions_are_capped(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], limits={"max_header_bytes": "8KiB"}))
    head = build_request("POST", "/p/m/x", headers=(("Transfer-Encoding", "chunked"),))
    # 1 byte of payload per chunk, with an extension: fine while the extensions stay small...
    ok = head + b"1;a=b\r\nx\r\n0\r\n\r\n"
    r, c = raw_exchange(fd.port, ok)
    c.close()
    assert r.status == 200
    # ...but extensions cannot stream without end beside a tiny payload.
    flood = head + b"".join(b"1;" + b"e" * 1000 + b"\r\nx\r\n" for _ in range(20)) + b"0\r\n\r\n"
    with Client(fd.port) as c:
        try:
            c.send(flood)
        except OSError:
            pass  # the daemon may have answered and closed first
        r = c.read_response("POST")
    assert r.status == 400, r


def test_transfer_codings_other_than_chunked_reach_the_client(frontdoor, upstream):
    upstream.set_script(Action(headers=[("Transfer-Encoding", "gzip")], chunked=True, body=b"\x1f\x8bgzipped"))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    r = request(fd.port, "GET", "/p/m/z")
    assert r.status == 200
    assert r.headers.tokens("transfer-encoding") == ["gzip", "chunked"], r.raw_head
    assert r.body == b"\x1f\x8bgzipped"
    # Close-delimited with a coding: the coding is kept, the body ends with the connection.
    upstream.set_script(Action(headers=[("Transfer-Encoding", "gzip")], content_length=False, body=b"\x1f\x8bz"))
    data = exchange_until_close(fd.port, build_request("GET", "/p/m/close"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert re.search(rb"(?im)^transfer-encoding: gzip\r?$", head), head
    assert body == b"\x1f\x8bz"


def test_a_transfer_coding_is_never_relayed_undeclared_to_an_http10_client(frontdoor, upstream):
    # HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1): de-chunked and sent on, a gzip-coded body
    # would reach the client as if it were the content. 502 instead; plain chunked still de-chunks.
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    for chunked in (True, False):
        upstream.set_script(Action(headers=[("Transfer-Encoding", "gzip")], chunked=chunked,
                                   content_length=False, body=b"\x1f\x8bgzipped"))
        r, c = raw_exchange(fd.port, b"GET /p/m/gz HTTP/1.0\r\nHost: fd.test\r\n\r\n")
        c.close()
        assert r.status == 502, (chunked, r)
        assert b"transfer coding" in r.body, r.body
    upstream.set_script(Action(chunked=True, body=b"plain"))
    r, c = raw_exchange(fd.port, b"GET /p/m/plain HTTP/1.0\r\nHost: fd.test\r\n\r\n")
    c.close()
    assert r.status == 200 and r.body == b"plain", r


def test_a_bodiless_response_with_transfer_encoding_reaches_an_http10_client(frontdoor, upstream):
    # A HEAD answer carries the Transfer-Encoding: chunked its GET would (RFC 9110 9.3.2), and a 304
    # may: no body, nothing to de-chunk. Each was a 502 counted against the endpoint, so five
    # HTTP/1.0 HEAD requests from anyone opened its breaker for every client.
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    upstream.set_script(Action(chunked=True))
    for _ in range(8):
        r, c = raw_exchange(fd.port, b"HEAD /p/m/x HTTP/1.0\r\nHost: fd.test\r\n\r\n", method="HEAD")
        c.close()
        assert r is not None and r.status == 200, r
        assert r.headers.get("Transfer-Encoding") is None, r.raw_head
    upstream.set_script(Action(status=304, headers=[("Transfer-Encoding", "chunked")]))
    r, c = raw_exchange(fd.port, b"GET /p/m/x HTTP/1.0\r\nHost: fd.test\r\n\r\n")
    c.close()
    assert r is not None and r.status == 304, r
    upstream.set_script(Action())
    assert request(fd.port, "GET", "/p/m/x", version="HTTP/1.1").status == 200


def test_a_response_an_http10_client_cannot_take_does_not_count_against_the_endpoint(frontdoor, upstream):
    # The 502 depends on the client's HTTP version, not on the endpoint's health: many such requests
    # must not open its breaker for HTTP/1.1 clients.
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    upstream.set_script(Action(headers=[("Transfer-Encoding", "gzip")], chunked=True, body=b"\x1f\x8bgz"))
    for _ in range(8):
        r, c = raw_exchange(fd.port, b"GET /p/m/gz HTTP/1.0\r\nHost: fd.test\r\n\r\n")
        c.close()
        assert r is not None and r.status == 502, r
    r = request(fd.port, "GET", "/p/m/gz")
    assert r.status == 200 and r.body == b"\x1f\x8bgz", r


def test_a_client_cannot_drop_the_host_it_was_routed_by_through_connection(frontdoor, upstream):
    # Fields the Connection header names are hop-by-hop and dropped, but not Host: the upstream
    # would see the endpoint's authority instead of the Host the request was routed by.
    fd = frontdoor(make_config([manifest("*", "*", [upstream])]))
    r = request(fd.port, "GET", "/x", headers=(("Connection", "host, x-drop-me"), ("X-Drop-Me", "1")),
                host="public.example")
    assert r.status == 200
    seen = upstream.request_list()[-1]
    assert seen.headers.get_all("Host") == ["public.example"], seen.raw_head
    assert seen.headers.get("X-Drop-Me") is None, seen.raw_head  # named fields still go


def test_an_http10_clients_expect_100_continue_is_ignored(frontdoor, upstream):
    # RFC 9110 10.1.1 and 15.2: no 1xx to an HTTP/1.0 client (it would take the 100 as the final
    # response and misread the real one), and the expectation is not forwarded either.
    upstream.set_script(Action(echo=True))
    fd = frontdoor(make_config([manifest("*", "*", [upstream])]))
    data = exchange_until_close(
        fd.port, b"POST /x HTTP/1.0\r\nHost: fd.test\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert data.endswith(b"\r\n\r\nabc"), data[-200:]
    seen = upstream.request_list()[-1]
    assert seen.headers.get("Expect") is None, seen.raw_head
    assert seen.body == b"abc"


def test_absolute_form_target_goes_upstream_in_origin_form_with_its_host(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    r = request(fd.port, "GET", "http://api.example.com:8080/p/m/items?id=7", headers=(("Host", "other.example"),))
    assert r.status == 200
    (seen,) = upstream.wait_requests(1)
    assert seen.target == "/p/m/items?id=7"
    assert seen.headers.get_all("Host") == ["api.example.com:8080"], "the target's authority wins (RFC 9112 3.2.2)"
    assert seen.headers.get("X-Forwarded-Host") == "api.example.com:8080"
    for bad in ("ftp://h/p/m/x", "http:///p/m/x", "http://user@h/p/m/x", "p/m/x"):
        r = request(fd.port, "GET", bad)
        assert r.status == 400, bad
    assert len(upstream.request_list()) == 1


def test_round_robin_starts_at_another_endpoint_on_each_worker(frontdoor, upstreams):
    # "run it twice": two fresh connections, whichever worker takes each, reach both endpoints.
    a, b = upstreams("a"), upstreams("b")
    for run in range(4):
        fd = frontdoor(make_config([manifest("*", "*", [a, b])], server={"workers": 2}), name="rr%d" % run)
        seen = [request(fd.port, "GET", "/demo/echo/%d" % i).headers.get("X-Upstream") for i in range(2)]
        assert sorted(seen) == ["a", "b"], (run, seen)
        fd.stop()


def test_second_sigterm_exits_at_once(frontdoor, upstream):
    upstream.set_script(Action(delay_ms=8000))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], server={"drain_timeout": "30s"}),
                   expect_clean_exit=False)
    c = Client(fd.port, timeout=10)
    c.send(build_request("GET", "/p/m/slow"))
    upstream.wait_requests(1, timeout=3)
    fd.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert fd.wait(0.2) is None, "the first SIGTERM drains: the request in flight keeps the process"
    t0 = time.monotonic()
    fd.signal(signal.SIGTERM)
    rc = fd.wait(3)
    assert rc == 2, "exit code %r after a second SIGTERM" % rc
    assert time.monotonic() - t0 < 2
    c.close()


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def test_a_client_that_leaves_while_waiting_for_the_upstream_is_noticed(frontdoor, upstream):
    upstream.set_script(Action(delay_ms=6000))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    c = Client(fd.port)
    c.send(build_request("GET", "/p/m/slow"))
    upstream.wait_requests(1, timeout=3)
    t0 = time.monotonic()
    c.close()  # gone, long before the upstream answers
    m = _wait_for(lambda: (lambda m: m if m["errors"].get("client_closed") else None)(fd.metrics()), 3)
    assert m and m["errors"].get("client_closed") == 1, m
    assert time.monotonic() - t0 < 2.5, "the hang-up took %.1f s to notice" % (time.monotonic() - t0)
    endpoint = m["endpoints"][0]
    assert endpoint["in_flight"] == 0, "the upstream request was not cancelled"
    assert endpoint["breaker_opened"] == 0 and m["responses"]["none"] == 1


def test_a_client_that_leaves_while_held_by_a_rate_limit_is_noticed(frontdoor, upstream):
    m = manifest("p", "m", [upstream])
    cfg = make_config([m])
    cfg["rate_limits"] = [{"name": "shaped", "algorithm": "leaky_bucket", "requests_per_second": 1, "burst": 5}]
    fd = frontdoor(cfg)
    with Client(fd.port) as first:
        assert first.request("GET", "/p/m/1").status == 200
    c = Client(fd.port)
    c.send(build_request("GET", "/p/m/held") + build_request("GET", "/p/m/held2"))  # held ~1 s, then ~2 s
    time.sleep(0.4)
    c.close()
    time.sleep(2.5)
    assert [q.target for q in upstream.request_list()] == ["/p/m/1"], "a request of a client gone was sent"
    assert fd.metrics()["errors"].get("client_closed") == 1


def test_a_client_that_stops_reading_is_cut_never_answered_twice(frontdoor, upstream):
    """A client that stops reading mid-response: the write stays pending until client_idle, then the
    connection is cut. No second response (a 504, a 408) is ever written beside the pending one."""
    upstream.set_script(Action(body=b"z" * (8 << 20)))
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts={"client_idle": "1s"}))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", fd.port))
    s.sendall(build_request("GET", "/p/m/big", headers=(("Expect", "100-continue"),)))
    time.sleep(2.5)  # past client_idle without reading a byte
    data = b""
    try:
        while True:
            part = s.recv(1 << 20)
            if not part:
                break
            data += part
    except ConnectionResetError:
        pass  # a cut resets the connection: what was received before stays readable
    s.close()
    assert data.count(b"HTTP/1.1 ") == 1, data[:200]
    assert data.startswith(b"HTTP/1.1 200")
    assert len(data) < 8 << 20, "the whole body arrived: the client was not cut"
    m = fd.metrics()
    assert m["errors"].get("client_timeout") == 1, m["errors"]
    assert m["endpoints"][0]["breaker_opened"] == 0
