"""An upstream that answers before the whole request body went up (RFC 9112 9.6, RFC 9110 15.2):
an interim 1xx does not stop the upload; an error answer is relayed at once, whether the proxy
was waiting for the client's body or for the upstream to take its own; a success that keeps
reading is relayed after the upload. Raw loopback upstreams, each stopping by itself."""
import socket
import threading
import time

from fdtest import make_config, manifest

HEAD = b"POST /x HTTP/1.1\r\nHost: fd.test\r\nContent-Length: %d\r\n\r\n"


class RawUpstream:
    """Accepts connections on loopback and runs `handler(sock)` for each, on a thread of its own."""

    def __init__(self, handler):
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.errors = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._run, args=(conn,), daemon=True).start()
        except OSError:
            return  # stopped, or nothing for 10 s

    def _run(self, conn):
        conn.settimeout(10)
        try:
            with conn:
                self.handler(conn)
        except OSError as e:
            self.errors.append(e)

    def stop(self):
        self.listener.close()


def read_head(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(4096)
        if not part:
            raise ConnectionError("closed before the head")
        data += part
    return data


def read_exactly(sock, n: int, already: bytes = b"") -> bytes:
    data = already
    while len(data) < n:
        part = sock.recv(65536)
        if not part:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), n))
        data += part
    return data


def read_response(sock, deadline: float) -> bytes:
    """The client's view: bytes up to the end of a Content-Length response (or the close)."""
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    data = b""
    while True:
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:") and len(body) >= int(line.split(b":")[1]):
                    return data
        try:
            part = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return data
        if not part:
            return data
        data += part


def body_of(head_and_rest: bytes) -> bytes:
    return head_and_rest.partition(b"\r\n\r\n")[2]


def _upload(c, total: int, stop: threading.Event) -> threading.Thread:
    """Sends a POST of `total` bytes on `c` from a thread of its own, until done, stopped, or closed."""
    def upload():
        try:
            c.sendall(HEAD % total)
            chunk = b"u" * 65536
            for _ in range(total // len(chunk)):
                if stop.is_set():
                    return
                c.sendall(chunk)
        except OSError:
            return  # the proxy closed after answering: expected

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    return sender


def test_an_interim_answer_during_the_upload_does_not_stop_it(frontdoor):
    def upstream(sock):
        got = read_head(sock)
        sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
        body = read_exactly(sock, 10, body_of(got))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + body)

    up = RawUpstream(upstream)
    try:
        fd = frontdoor(make_config([manifest("*", "*", [up.address])]))
        with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
            c.sendall(HEAD % 10)
            time.sleep(0.3)  # the 103 arrives while the proxy waits for the body
            c.sendall(b"01234")
            time.sleep(0.3)
            c.sendall(b"56789")
            answer = read_response(c, time.monotonic() + 5)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert body_of(answer) == b"0123456789", answer
        assert b"103" not in answer.split(b"\r\n")[0]
    finally:
        up.stop()


def test_an_error_answer_is_relayed_while_the_upstream_does_not_read_the_body(frontdoor):
    # The upstream stops reading and refuses: the proxy's upload is stuck in a write, which must not
    # keep the answer from the client until a timeout.
    def upstream(sock):
        read_head(sock)
        time.sleep(0.3)
        sock.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nbig!")
        time.sleep(4)  # open, not reading

    up = RawUpstream(upstream)
    stop = threading.Event()
    try:
        fd = frontdoor(make_config([manifest("*", "*", [up.address])]))
        c = socket.create_connection(("127.0.0.1", fd.port), timeout=5)
        sender = _upload(c, 64 << 20, stop)
        started = time.monotonic()
        answer = read_response(c, started + 3)
        stop.set()
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
        assert body_of(answer) == b"big!"
        assert time.monotonic() - started < 3
        c.close()
        sender.join(5)
    finally:
        stop.set()
        up.stop()


def test_an_error_answer_is_relayed_while_the_client_pauses_its_body(frontdoor):
    def upstream(sock):
        read_head(sock)
        sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope!")
        sock.shutdown(socket.SHUT_WR)
        time.sleep(1)

    up = RawUpstream(upstream)
    try:
        fd = frontdoor(make_config([manifest("*", "*", [up.address])]))
        with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
            c.sendall(HEAD % 1000)  # and no body yet
            started = time.monotonic()
            answer = read_response(c, started + 3)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]
        assert body_of(answer) == b"nope!"
        assert time.monotonic() - started < 3
    finally:
        up.stop()


def test_a_success_that_keeps_reading_is_relayed_after_the_upload(frontdoor):
    # A head sent early, then the whole body read, then the response's body: the upload must go on.
    def upstream(sock):
        got = read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        body = read_exactly(sock, 10, body_of(got))
        sock.sendall(b"a\r\n" + body + b"\r\n0\r\n\r\n")

    up = RawUpstream(upstream)
    try:
        fd = frontdoor(make_config([manifest("*", "*", [up.address])]))
        with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
            c.sendall(HEAD % 10)
            time.sleep(0.3)  # the early head arrives while the proxy waits for the body
            c.sendall(b"01234")
            time.sleep(0.3)
            c.sendall(b"56789")
            c.settimeout(5)
            answer = b""
            while not answer.endswith(b"0\r\n\r\n"):
                part = c.recv(65536)
                assert part, "closed early: %r" % answer
                answer += part
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert b"0123456789" in answer
    finally:
        up.stop()


def test_a_success_whose_upstream_stops_reading_is_relayed_at_the_stall(frontdoor):
    # It answers 200 at once and never reads the rest: the upload can never end. The answer was held
    # for it, then the stall became a 504, and a timeout for the endpoint's breaker.
    def upstream(sock):
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\naccepted")
        time.sleep(5)  # open, not reading

    up = RawUpstream(upstream)
    stop = threading.Event()
    try:
        fd = frontdoor(make_config([manifest("*", "*", [up.address])],
                                   timeouts={"client_body": "1s", "upstream_response": "1s"}))
        c = socket.create_connection(("127.0.0.1", fd.port), timeout=5)
        sender = _upload(c, 64 << 20, stop)
        answer = read_response(c, time.monotonic() + 4)
        stop.set()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert body_of(answer) == b"accepted"
        c.close()
        sender.join(5)
        m = fd.metrics()
        assert m["errors"] == {}, m["errors"]
        assert m["endpoints"][0]["breaker_opened"] == 0
    finally:
        stop.set()
        up.stop()
