"""Upstreams that end, frame or switch a response in ways a proxy can get wrong: a FIN that came with
a keep-alive response's last bytes, framing named in Connection, HTTP/1.0 with a transfer coding, a
broken first chunk, a 101 that names no protocol. Each upstream is a raw socket script."""
import socket
import threading
import time

from fdtest import Client, make_config, manifest


class RawUpstream:
    """Serves each connection with `handlers[i]` (the i-th connection; the last handler serves the
    rest). A handler gets the socket and the first request's bytes. Loopback; stopped at the end."""

    def __init__(self, *handlers):
        self.handlers = handlers
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.connections = 0
        self.requests = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            handler = self.handlers[min(self.connections, len(self.handlers) - 1)]
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, handler), daemon=True).start()

    def _serve(self, conn, handler):
        conn.settimeout(5)
        try:
            handler(self, conn)
        except OSError:
            pass
        finally:
            conn.close()

    def read_request(self, conn):
        """One request: its head and the body its Content-Length announces; None at the end."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        self.requests.append((head.split(b"\r\n")[0], body))
        return head, body

    def stop(self):
        self.stopped = True
        self.thread.join(2)
        self.listener.close()


def serve_forever(up, conn):
    while True:
        request = up.read_request(conn)
        if request is None:
            return
        body = b"got " + request[1]
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def answer_then(how):
    """One keep-alive response whose last bytes share a segment with the FIN (cork, send, close)."""
    def handler(up, conn):
        up.read_request(conn)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if how == "close":
            conn.close()
            return
        conn.shutdown(socket.SHUT_WR)  # half-closed: it reads on, and can never answer
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        while conn.recv(65536):
            pass
    return handler


def answer_once(raw):
    """Reads one request, answers `raw`, and holds the connection a moment."""
    def handler(up, conn):
        up.read_request(conn)
        conn.sendall(raw)
        time.sleep(0.5)
    return handler


def proxy_to(frontdoor, up, **over):
    return frontdoor(make_config([manifest("p", "m", [up.address])], server={"workers": 1},
                                 timeouts={"upstream_response": "3s"}, **over))


def test_a_connection_the_upstream_ended_with_its_response_is_not_reused_for_a_request_that_cannot_be_retried(
        frontdoor):
    # The pool's idle read waits for the socket's next edge, and a FIN that came with the response
    # raises none: the dead connection was handed to the next request. A GET is retried on a new
    # connection, but a POST got a 502 (closed) or waited for a 504 (half-closed), and the half-closed
    # upstream processed it.
    for how in ("close", "half-close"):
        up = RawUpstream(answer_then(how), serve_forever)
        try:
            fd = proxy_to(frontdoor, up)
            with Client(fd.port, timeout=5) as c:
                assert c.request("GET", "/p/m/1").status == 200
                time.sleep(0.3)  # the FIN is in; nothing tells the pool
                started = time.monotonic()
                r = c.request("POST", "/p/m/2", body=b"hello")
                assert (how, r.status, r.body) == (how, 200, b"got hello")
                assert time.monotonic() - started < 1
            assert [line for line, _ in up.requests].count(b"POST /p/m/2 HTTP/1.1") == 1, up.requests
            assert up.connections == 2
        finally:
            up.stop()
            fd.stop()


def test_framing_named_in_connection_still_reaches_the_client(frontdoor):
    # `Connection: Content-Length` dropped the only framing of a persistent response: the client
    # waited for a close that never came (and took a pipelined answer for this body).
    def handler(up, conn):
        while up.read_request(conn) is not None:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Content-Length\r\n\r\n")
    up = RawUpstream(handler)
    try:
        fd = proxy_to(frontdoor, up)
        with Client(fd.port, timeout=3) as c:
            r = c.request("GET", "/p/m/1")
            assert (r.status, r.headers.get("Content-Length"), r.body) == (200, "0", b"")
            assert c.request("GET", "/p/m/2").status == 200
    finally:
        up.stop()


def test_an_http10_response_with_a_transfer_coding_ends_its_connection(frontdoor):
    # RFC 9112 §6.1: faulty framing. It was read as chunked and the connection reused.
    def handler(up, conn):
        while up.read_request(conn) is not None:
            conn.sendall(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"2\r\nok\r\n0\r\n\r\n")
    up = RawUpstream(handler)
    try:
        fd = proxy_to(frontdoor, up)
        with Client(fd.port, timeout=3) as c:
            for i in range(2):
                r = c.request("GET", "/p/m/%d" % i)
                assert (r.status, r.body) == (200, b"ok")
        assert up.connections == 2
    finally:
        up.stop()


def test_a_broken_first_chunk_is_a_502_not_a_reset(frontdoor):
    # The client head was marked sent before anything was written: the client got a reset and no
    # status, and the access log a 200.
    up = RawUpstream(answer_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n"))
    try:
        fd = proxy_to(frontdoor, up)
        with Client(fd.port, timeout=3) as c:
            r = c.request("GET", "/p/m/1")
            assert r.status == 502 and b"bad chunked framing" in r.body, r
        assert fd.metrics()["errors"].get("upstream_bad_response") == 1
    finally:
        up.stop()


def test_a_101_must_name_the_protocol_it_switched_to(frontdoor):
    up = RawUpstream(answer_once(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\nRAW"))
    try:
        fd = proxy_to(frontdoor, up)
        with Client(fd.port, timeout=3) as c:
            r = c.request("GET", "/p/m/ws", headers=[("Connection", "upgrade"), ("Upgrade", "websocket")])
            assert r.status == 502 and b"without the protocol offered" in r.body, r
    finally:
        up.stop()
