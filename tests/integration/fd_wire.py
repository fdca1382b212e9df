"""HTTP/1.1 on raw sockets for the end-to-end tests: a buffered reader, head parsing, and a client that
sends exact bytes and reads one response (Content-Length, chunked or close-delimited). Standard
library only; every blocking call has a timeout."""
from __future__ import annotations

import dataclasses
import hashlib
import random
import socket
import time
from typing import Iterable, Optional

LOCALHOST = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0


# --------------------------------------------------------------------------------------------
# Buffered socket reader (used by both the upstream and the client)
# --------------------------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The peer closed (or reset) the connection before the expected bytes arrived."""

    def __init__(self, message: str, partial: bytes = b""):
        super().__init__(message)
        self.partial = partial


class Reader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self, max_bytes: int = 1 << 20) -> bool:
        """Reads more bytes into the buffer; False at EOF (a reset counts as EOF)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(max_bytes)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, delim: bytes, limit: int = 1 << 20) -> bytes:
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(delim)])
                del self.buf[: i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("line too long")
            start = max(0, len(self.buf) - len(delim) + 1)
            if not self._fill():
                partial = bytes(self.buf)
                self.buf.clear()
                raise ConnectionClosed("closed while waiting for %r" % delim, partial)

    def read_line(self) -> bytes:
        """One line ending in LF (CRLF or bare LF), returned without the line ending."""
        line = self.read_until(b"\n")
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    def read_exact(self, n: int) -> bytes:
        parts = []
        have = 0
        if self.buf:
            take = bytes(self.buf[:n])
            del self.buf[: len(take)]
            parts.append(take)
            have = len(take)
        while have < n:
            if self.eof:
                raise ConnectionClosed("closed after %d of %d body bytes" % (have, n), b"".join(parts))
            try:
                data = self.sock.recv(min(1 << 20, n - have))
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                data = b""
            if not data:
                self.eof = True
                raise ConnectionClosed("closed after %d of %d body bytes" % (have, n), b"".join(parts))
            parts.append(data)
            have += len(data)
        return b"".join(parts)

    def read_to_eof(self, limit: int = 256 << 20) -> bytes:
        while len(self.buf) <= limit and self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_chunked(self) -> tuple[bytes, list[tuple[str, str]]]:
        """Decodes a chunked body; returns (body, trailer fields)."""
        parts = []
        for _ in range(10_000_000):
            size_line = self.read_line()
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ValueError("bad chunk size line %r" % size_line)
            if size == 0:
                trailers = []
                while True:
                    line = self.read_line()
                    if not line:
                        return b"".join(parts), trailers
                    name, _, value = line.decode("latin-1").partition(":")
                    trailers.append((name, value.strip()))
            parts.append(self.read_exact(size))
            if self.read_exact(2) != b"\r\n":
                raise ValueError("chunk data not followed by CRLF")
        raise ValueError("too many chunks")


def parse_head_lines(lines: list[bytes]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ValueError("header line without colon: %r" % line)
        headers.append((name, value.strip(" \t")))
    return headers


def read_head(reader: Reader) -> tuple[bytes, list[tuple[str, str]], bytes]:
    """Reads a start line and header fields; returns (start_line, headers, raw head bytes)."""
    raw = bytearray()
    start = reader.read_line()
    raw += start + b"\r\n"
    lines = []
    for _ in range(10_000):
        line = reader.read_line()
        raw += line + b"\r\n"
        if not line:
            return start, parse_head_lines(lines), bytes(raw)
        lines.append(line)
    raise ValueError("too many header lines")


class Headers:
    """Case-insensitive view of a header list, keeping order and repeats."""

    def __init__(self, items: Iterable[tuple[str, str]]):
        self.items = list(items)

    def get_all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def get(self, name: str, default=None) -> Optional[str]:
        values = self.get_all(name)
        if not values:
            return default
        return values[0]

    def joined(self, name: str) -> Optional[str]:
        """All fields of that name joined with ", " (the RFC 9110 §5.3 combination)."""
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> list[str]:
        out = []
        for v in self.get_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __contains__(self, name: str) -> bool:
        return bool(self.get_all(name))

    def names(self) -> list[str]:
        return [k.lower() for k, _ in self.items]

    def __repr__(self):
        return "Headers(%r)" % (self.items,)


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: Headers
    body: bytes
    raw_head: bytes
    chunked: bool
    trailers: list

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "Response(%d %s, headers=%r, body=%r)" % (self.status, self.reason, self.headers.items,
                                                          self.body[:300])


class IncompleteResponse(Exception):
    """The head arrived, but the connection ended before the framed body did."""

    def __init__(self, head: Response, partial: bytes, why: str):
        super().__init__("incomplete response %d: %s (%d body bytes received)" % (head.status, why, len(partial)))
        self.head = head
        self.partial = partial


class Client:
    """A raw client connection: send exact bytes, read framed responses."""

    def __init__(self, port: int, timeout: float = DEFAULT_TIMEOUT, host: str = LOCALHOST,
                 source: Optional[str] = None):
        """`source`: the local address to connect from (any of 127.0.0.0/8 is this host: another client)."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = Reader(self.sock)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t: float):
        self.sock.settimeout(t)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def request(self, method: str = "GET", target: str = "/", headers=(), body: Optional[bytes] = None,
                version: str = "HTTP/1.1", host: Optional[str] = "fd.test") -> Response:
        self.send(build_request(method, target, headers, body, version, host))
        return self.read_response(method)

    def read_response(self, method: str = "GET", skip_interim: bool = True) -> Response:
        for _ in range(10):
            try:
                start, headers, raw = read_head(self.reader)
            except ConnectionClosed as e:
                raise ConnectionClosed("connection closed before a response head", e.partial)
            parts = start.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError("bad status line %r" % start)
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            h = Headers(headers)
            resp = Response(version, status, reason, h, b"", raw, False, [])
            if 100 <= status < 200 and skip_interim and status != 101:
                continue
            break
        te = h.tokens("transfer-encoding")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        if te:
            if te[-1] != "chunked":
                raise ValueError("response with Transfer-Encoding %r" % te)
            resp.chunked = True
            try:
                resp.body, resp.trailers = self.reader.read_chunked()
            except ConnectionClosed as e:
                raise IncompleteResponse(resp, e.partial, "chunked body cut")
            return resp
        cl = h.get_all("content-length")
        if cl:
            if len(set(cl)) != 1:
                raise ValueError("response with several Content-Length values %r" % cl)
            n = int(cl[0])
            try:
                resp.body = self.reader.read_exact(n)
            except ConnectionClosed as e:
                raise IncompleteResponse(resp, e.partial, "Content-Length body cut")
            return resp
        resp.body = self.reader.read_to_eof()
        return resp

    def wait_closed(self, timeout: float = 3.0) -> tuple[bool, bytes]:
        """Waits until the peer closes; returns (closed, unexpected bytes received meanwhile)."""
        old = self.sock.gettimeout()
        deadline = time.monotonic() + timeout
        extra = bytes(self.reader.buf)
        self.reader.buf.clear()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False, extra
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    return False, extra
                except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                    return True, extra
                if not data:
                    return True, extra
                extra += data
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass

    def assert_closed(self, timeout: float = 3.0):
        closed, extra = self.wait_closed(timeout)
        assert not extra, "expected the connection to close, but got more bytes: %r" % extra[:500]
        assert closed, "expected the connection to be closed within %.1f s, it stayed open" % timeout

    def assert_open(self, wait: float = 0.3):
        closed, extra = self.wait_closed(wait)
        assert not extra, "unexpected bytes on an idle connection: %r" % extra[:500]
        assert not closed, "the connection was closed"


def build_request(method: str = "GET", target: str = "/", headers=(), body: Optional[bytes] = None,
                  version: str = "HTTP/1.1", host: Optional[str] = "fd.test") -> bytes:
    lines = ["%s %s %s" % (method, target, version)]
    names = {k.lower() for k, _ in headers}
    if host is not None and "host" not in names:
        lines.append("Host: %s" % host)
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def request(port: int, method: str = "GET", target: str = "/", headers=(), body: Optional[bytes] = None,
            version: str = "HTTP/1.1", host: Optional[str] = "fd.test", timeout: float = DEFAULT_TIMEOUT) -> Response:
    """One request on a fresh connection."""
    with Client(port, timeout) as c:
        return c.request(method, target, headers, body, version, host)


def raw_exchange(port: int, data: bytes, timeout: float = DEFAULT_TIMEOUT, method: str = "GET"):
    """Sends exact bytes on a fresh connection; returns (response or None if closed, client)."""
    c = Client(port, timeout)
    c.send(data)
    try:
        return c.read_response(method), c
    except ConnectionClosed:
        return None, c


def exchange_until_close(port: int, data: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Sends exact bytes on a fresh connection; returns every byte read until the daemon closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        received = b""
        while True:
            part = s.recv(65536)
            if not part:
                return received
            received += part


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, str]:
    """Everything the peer sends until it closes ("closed") or resets ("reset": what came before is kept)."""
    data = bytearray()
    sock.settimeout(seconds)
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            return bytes(data), "reset"
        if not chunk:
            return bytes(data), "closed"
        data += chunk


def slow_reader_that_pipelines(port: int, target: str, then=lambda: None) -> socket.socket:
    """A client with a small receive buffer: asks for `target`, then pipelines two more requests while
    the answer is on its way (one after the proxy's 300 ms watch read has taken the connection, one
    that stays in the kernel), calls `then`, and leaves the reading to the caller."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(("127.0.0.1", port))
    sock.sendall(build_request("GET", target))
    time.sleep(0.5)
    sock.sendall(build_request("GET", "/p/m/second"))
    time.sleep(0.2)
    sock.sendall(build_request("GET", "/p/m/third"))
    time.sleep(0.1)
    then()
    return sock


def chunk_encode(chunks: Iterable[bytes], trailers: str = "") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n" + trailers.encode() + b"\r\n"


def free_port() -> int:
    """A port with nothing listening (bound then released; nothing else should take it meanwhile)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOCALHOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connection_refused(port: int, timeout: float = 2.0) -> bool:
    """True when connecting is refused, or the connection is closed/reset without a byte."""
    try:
        s = socket.create_connection((LOCALHOST, port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    try:
        s.settimeout(timeout)
        try:
            s.sendall(b"GET /p/m/x HTTP/1.1\r\nHost: fd.test\r\n\r\n")
            data = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return True
        except socket.timeout:
            return False
        return data == b""
    finally:
        s.close()


def random_bytes(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
