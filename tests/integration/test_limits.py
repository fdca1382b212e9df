"""limits: request line 414, header bytes/count 431, body 413; each reply is short text + close."""
import pytest

from fdtest import Client, build_request, chunk_encode, make_config, manifest, request


@pytest.fixture
def proxy(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], limits={
        "max_request_line_bytes": "1KiB",
        "max_header_bytes": "4KiB",
        "max_header_count": 20,
        "max_body_bytes": "1KiB",
    }))
    return fd, upstream


def assert_refused(c: Client, status: int):
    r = c.read_response()
    assert r.status == status, r
    assert 0 < len(r.body) < 1024, "expected a short text body: %r" % r.body
    assert (r.headers.get("Content-Type") or "").startswith("text/"), r.headers
    c.assert_closed(3)
    return r


def test_request_line_too_long_is_414(proxy):
    fd, up = proxy
    with Client(fd.port) as c:
        c.send(build_request("GET", "/p/m/" + "a" * 2000))
        assert_refused(c, 414)
    assert up.request_list() == []


def test_request_line_under_limit_passes(proxy):
    fd, up = proxy
    target = "/p/m/" + "a" * 900
    r = request(fd.port, "GET", target)
    assert r.status == 200
    assert up.request_list()[0].target == target


def test_header_block_too_large_is_431(proxy):
    fd, up = proxy
    headers = [("X-Filler-%d" % i, "v" * 500) for i in range(10)]  # ~5 KiB in 10 fields
    with Client(fd.port) as c:
        c.send(build_request("GET", "/p/m/h", headers))
        assert_refused(c, 431)
    assert up.request_list() == []


def test_single_huge_header_is_431(proxy):
    fd, up = proxy
    with Client(fd.port) as c:
        c.send(build_request("GET", "/p/m/h", [("Cookie", "c" * 6000)]))
        assert_refused(c, 431)
    assert up.request_list() == []


def test_too_many_headers_is_431(proxy):
    fd, up = proxy
    headers = [("X-H%d" % i, "1") for i in range(30)]
    with Client(fd.port) as c:
        c.send(build_request("GET", "/p/m/h", headers))
        assert_refused(c, 431)
    assert up.request_list() == []


def test_headers_under_limits_pass(proxy):
    fd, up = proxy
    headers = [("X-H%d" % i, "v" * 100) for i in range(15)]
    r = request(fd.port, "GET", "/p/m/ok", headers)
    assert r.status == 200
    assert up.request_list()[0].headers.get("X-H14") == "v" * 100


def test_declared_body_too_large_is_413_without_waiting_for_it(proxy):
    fd, up = proxy
    with Client(fd.port, timeout=3) as c:
        # Only the head: the declared length alone must be refused, at once.
        c.send(build_request("POST", "/p/m/big", [("Content-Length", "2048")]))
        assert_refused(c, 413)
    assert up.request_list() == []


def test_chunked_body_crossing_limit_is_413(proxy):
    fd, up = proxy
    with Client(fd.port) as c:
        c.send(build_request("POST", "/p/m/big", [("Transfer-Encoding", "chunked")])
               + chunk_encode([b"x" * 600, b"y" * 600, b"z" * 600]))
        assert_refused(c, 413)
    # The upstream may have seen the head, but never a complete request.
    assert up.request_list() == []


def test_body_within_limit_passes(proxy):
    fd, up = proxy
    r = request(fd.port, "POST", "/p/m/ok", body=b"b" * 1000)
    assert r.status == 200
    with Client(fd.port) as c:
        c.send(build_request("POST", "/p/m/ok", [("Transfer-Encoding", "chunked")])
               + chunk_encode([b"x" * 500, b"y" * 500]))
        assert c.read_response().status == 200
    assert [len(q.body) for q in up.request_list()] == [1000, 1000]
