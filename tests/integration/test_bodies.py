"""Bodies and connection management: framing both ways, large bodies, HTTP/1.0, pipelining, keep-alive."""
import threading
import time

import pytest

from fdtest import (Action, Client, build_request, chunk_encode, make_config, manifest, random_bytes,
                    read_until_closed, request, sha256, slow_reader_that_pipelines)

MiB = 1 << 20


@pytest.fixture
def proxy(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts={"upstream_response": "20s"}))
    return fd, upstream


def test_content_length_body_reaches_upstream(proxy):
    fd, up = proxy
    up.set_script(Action(echo=True))
    r = request(fd.port, "POST", "/p/m/upload", headers=[("Content-Type", "application/json")],
                body=b'{"hello": "world"}')
    assert r.status == 200
    assert r.body == b'{"hello": "world"}'
    [got] = up.request_list()
    assert got.body == b'{"hello": "world"}'
    assert got.headers.get("Content-Length") == "18"
    assert "transfer-encoding" not in got.headers
    assert got.headers.get("Content-Type") == "application/json"


def test_empty_content_length_body(proxy):
    fd, up = proxy
    r = request(fd.port, "POST", "/p/m/empty", body=b"")
    assert r.status == 200
    [got] = up.request_list()
    assert got.body == b""
    assert got.headers.get("Content-Length") in ("0", None)


def test_chunked_request_body_reaches_upstream(proxy):
    fd, up = proxy
    up.set_script(Action(echo=True))
    with Client(fd.port) as c:
        c.send(build_request("POST", "/p/m/chunked", [("Transfer-Encoding", "chunked")])
               + chunk_encode([b"hello", b" ", b"chunked world"]))
        r = c.read_response()
    assert r.status == 200
    assert r.body == b"hello chunked world"
    [got] = up.request_list()
    assert got.body == b"hello chunked world"
    te = got.headers.tokens("transfer-encoding")
    assert te == ["chunked"] or got.headers.get("Content-Length") == "19", got.headers


def test_chunked_request_with_extensions_and_trailer(proxy):
    fd, up = proxy
    up.set_script(Action(echo=True))
    body = (b"4;name=value\r\nabcd\r\n"
            b"3\r\nefg\r\n"
            b"0\r\nX-Checksum: 42\r\n\r\n")
    with Client(fd.port) as c:
        c.send(build_request("POST", "/p/m/ext", [("Transfer-Encoding", "chunked")]) + body)
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"abcdefg"
        # The connection is still in sync after the trailer section.
        r2 = c.request("GET", "/p/m/after")
        assert r2.status == 200
    assert up.request_list()[0].body == b"abcdefg"


def test_chunked_request_sent_slowly_in_pieces(proxy):
    fd, up = proxy
    up.set_script(Action(echo=True))
    with Client(fd.port) as c:
        c.send(build_request("POST", "/p/m/slow", [("Transfer-Encoding", "chunked")]))
        for piece in (b"5\r\nhel", b"lo\r\n", b"6\r\n wor", b"ld\r\n", b"0\r\n", b"\r\n"):
            time.sleep(0.05)
            c.send(piece)
        r = c.read_response()
    assert (r.status, r.body) == (200, b"hello world")


def test_large_chunked_upload_50mib(proxy):
    fd, up = proxy
    data = random_bytes(50 * MiB, seed=7)
    up.set_script(Action(body=b"got it"))
    with Client(fd.port, timeout=30) as c:
        c.send(build_request("PUT", "/p/m/big", [("Transfer-Encoding", "chunked")]))
        view = memoryview(data)
        step = 256 * 1024
        for i in range(0, len(data), step):
            piece = view[i:i + step]
            c.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    assert (r.status, r.body) == (200, b"got it")
    [got] = up.request_list()
    assert len(got.body) == len(data)
    assert sha256(got.body) == sha256(data)


def test_large_content_length_echo_50mib_both_ways(proxy):
    fd, up = proxy
    data = random_bytes(50 * MiB, seed=11)
    up.set_script(Action(echo=True))
    with Client(fd.port, timeout=30) as c:
        c.send(build_request("POST", "/p/m/echo", [("Content-Length", str(len(data)))]))
        # Send the body from another thread: a streaming proxy may start the response early.
        sender = threading.Thread(target=c.send, args=(data,), daemon=True)
        sender.start()
        r = c.read_response()
        sender.join(30)
    assert r.status == 200
    assert int(r.headers.get("Content-Length") or len(r.body)) == len(data)
    assert len(r.body) == len(data)
    assert sha256(r.body) == sha256(data)
    assert sha256(up.request_list()[0].body) == sha256(data)


def test_large_chunked_download_50mib(proxy):
    fd, up = proxy
    data = random_bytes(50 * MiB, seed=3)
    up.set_script(Action(body=data, chunked=True, chunk_size=100_000))
    with Client(fd.port, timeout=30) as c:
        c.send(build_request("GET", "/p/m/dl"))
        r = c.read_response()
    assert r.status == 200
    assert len(r.body) == len(data)
    assert sha256(r.body) == sha256(data)


def test_chunked_response_reaches_http11_client(proxy):
    fd, up = proxy
    up.set_script(Action(chunks=[b"first,", b"second,", b"third"]))
    with Client(fd.port) as c:
        r = c.request("GET", "/p/m/c")
        assert r.status == 200
        assert r.body == b"first,second,third"
        # Framing is either chunked or an exact Content-Length, never close-delimited on 1.1.
        assert r.chunked or r.headers.get("Content-Length") == "18", r.headers
        assert c.request("GET", "/p/m/again").status == 200


def test_close_delimited_upstream_response(proxy):
    fd, up = proxy
    up.set_script(Action(body=b"until the end", content_length=False))
    r = request(fd.port, "GET", "/p/m/eof")
    assert (r.status, r.body) == (200, b"until the end")


def test_http10_client_gets_response_and_close(proxy):
    fd, up = proxy
    with Client(fd.port) as c:
        c.send(b"GET /p/m/old HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.version in ("HTTP/1.0", "HTTP/1.1")
        assert r.body == b"upstream=a method=GET target=/p/m/old\n"
        assert "keep-alive" not in r.headers.tokens("connection")
        c.assert_closed(3)
    assert up.request_list()[0].target == "/p/m/old"


def test_http10_client_with_chunked_upstream_gets_plain_body(proxy):
    fd, up = proxy
    up.set_script(Action(chunks=[b"part one, ", b"part two"]))
    with Client(fd.port) as c:
        c.send(b"GET /p/m/old HTTP/1.0\r\nHost: fd.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert "transfer-encoding" not in r.headers, "chunked sent to an HTTP/1.0 client: %r" % r.headers
        assert r.body == b"part one, part two"


def test_http10_keep_alive(proxy):
    fd, up = proxy
    with Client(fd.port) as c:
        c.send(b"GET /p/m/ka HTTP/1.0\r\nHost: fd.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"upstream=a method=GET target=/p/m/ka\n"
        if "keep-alive" in r.headers.tokens("connection"):
            c.send(b"GET /p/m/ka2 HTTP/1.0\r\nHost: fd.test\r\nConnection: keep-alive\r\n\r\n")
            r2 = c.read_response()
            assert r2.status == 200 and r2.body == b"upstream=a method=GET target=/p/m/ka2\n"
        else:
            c.assert_closed(3)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(proxy, status):
    fd, up = proxy
    up.set_script(Action(status=status, headers=[("ETag", '"v1"')]))
    with Client(fd.port) as c:
        r = c.request("GET", "/p/m/nb")
        assert r.status == status
        assert r.headers.get("ETag") == '"v1"'
        assert "transfer-encoding" not in r.headers
        up.set_script(Action(body=b"next"))
        r2 = c.request("GET", "/p/m/next")
        assert (r2.status, r2.body) == (200, b"next")


def test_pipelined_requests_answered_in_order(proxy):
    fd, up = proxy
    # The first request is slower at the upstream: order must still be kept.
    up.set_script(lambda req: Action(delay_ms=300 if req.target.endswith("/first") else 0))
    with Client(fd.port) as c:
        c.send(build_request("GET", "/p/m/first") + build_request("POST", "/p/m/second", body=b"xyz")
               + build_request("GET", "/p/m/third"))
        bodies = [c.read_response().body for _ in range(3)]
    assert bodies == [b"upstream=a method=GET target=/p/m/first\n",
                      b"upstream=a method=POST target=/p/m/second\n",
                      b"upstream=a method=GET target=/p/m/third\n"]
    got = {q.target: q for q in up.request_list()}
    assert got["/p/m/second"].body == b"xyz"


def test_keep_alive_reuses_upstream_connection(proxy):
    fd, up = proxy
    with Client(fd.port) as c:
        for i in range(20):
            r = c.request("GET", "/p/m/ka/%d" % i)
            assert r.status == 200
            assert r.body == ("upstream=a method=GET target=/p/m/ka/%d\n" % i).encode()
    assert len(up.request_list()) == 20
    assert up.accepted <= 2, "20 requests on one client connection opened %d upstream connections" % up.accepted


def test_upstream_connections_pooled_across_client_connections(proxy):
    fd, up = proxy
    for i in range(10):
        r = request(fd.port, "GET", "/p/m/pool/%d" % i)
        assert r.status == 200
    assert up.accepted <= 2, "10 sequential client connections opened %d upstream connections" % up.accepted


def test_client_connection_close_is_honoured(proxy):
    fd, up = proxy
    with Client(fd.port) as c:
        r = c.request("GET", "/p/m/bye", headers=[("Connection", "close")])
        assert r.status == 200
        assert "close" in r.headers.tokens("connection")
        c.assert_closed(3)


def test_upstream_connection_close_does_not_close_client(proxy):
    fd, up = proxy
    up.set_script(Action(close=True))
    with Client(fd.port) as c:
        for i in range(3):
            r = c.request("GET", "/p/m/uc/%d" % i)
            assert r.status == 200
            assert r.body == ("upstream=a method=GET target=/p/m/uc/%d\n" % i).encode()
    assert up.accepted == 3


def test_expect_100_continue(proxy):
    fd, up = proxy
    up.set_script(Action(echo=True))
    with Client(fd.port) as c:
        c.send(build_request("POST", "/p/m/exp", [("Expect", "100-continue"), ("Content-Length", "5")]))
        # A proxy may answer 100 Continue itself or wait for the body; send it after a short pause.
        time.sleep(0.2)
        c.send(b"hello")
        r = c.read_response()
    assert (r.status, r.body) == (200, b"hello")
    assert up.request_list()[0].body == b"hello"



def test_a_close_delimited_body_reaches_a_client_that_pipelined_more_requests(proxy):
    # The response ends the connection while the client's next requests wait unread: closing over
    # them made the kernel reset the connection, and the reset dropped megabytes still unsent.
    fd, up = proxy
    body = b"x" * (8 * MiB)
    up.set_script(Action(body=body, content_length=False))
    with slow_reader_that_pipelines(fd.port, "/p/m/big") as sock:
        time.sleep(1.0)
        data, end = read_until_closed(sock, 20)
    head, _, got = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    assert len(got) == len(body), "%d of %d body bytes, then %s" % (len(got), len(body), end)
    assert end == "closed"
