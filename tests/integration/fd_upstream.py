"""ScriptedUpstream: an exact HTTP/1.1 server on 127.0.0.1 in threads of the test process. It records
every request (method, target, headers as a list, body, connection id) and answers per an Action
(status/headers/body, chunked, delay, close/reset after headers or mid-body, never answer, echo)."""
from __future__ import annotations

import dataclasses
import hashlib
import socket
import struct
import threading
import time
from typing import Callable, Optional, Union
from fd_wire import LOCALHOST, ConnectionClosed, Headers, Reader, read_head


# --------------------------------------------------------------------------------------------
# Scripted upstream
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Request:
    conn_id: int
    method: str
    target: str
    version: str
    headers: Headers
    body: bytes
    trailers: list
    raw_head: bytes
    received_at: float

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclasses.dataclass
class Action:
    """How the scripted upstream answers one request.

    mode:
      "normal"               full response
      "close_after_headers"  send the head, then close (FIN)
      "reset_after_headers"  send the head, then reset (RST)
      "close_mid_body"       send the head and half of the body, then close
      "reset_mid_body"       send the head and half of the body, then reset
      "reset"                read the request, answer nothing, reset
      "close"                read the request, answer nothing, close
      "never"                read the request, never answer (until the upstream stops)
      "raw_with_fin"         send `body` as the raw answer and the FIN in one TCP segment
    """
    status: int = 200
    reason: Optional[str] = None
    headers: list = dataclasses.field(default_factory=list)
    body: Optional[bytes] = None        # None: a short text naming upstream, method and target
    chunked: bool = False
    chunks: Optional[list] = None      # explicit chunk list (implies chunked)
    chunk_size: int = 64 * 1024
    content_length: bool = True        # False (and not chunked): close-delimited body
    delay_ms: int = 0
    echo: bool = False                 # body = the request body
    mode: str = "normal"
    close: bool = False                # send "Connection: close" and close after the response
    upstream_header: bool = True       # add X-Upstream: <name>


REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 304: "Not Modified",
    400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable",
}


class ScriptedUpstream:
    def __init__(self, name: str, script: Union[None, Action, Callable[[Request], Action]] = None, port: int = 0,
                 host: str = LOCALHOST):
        self.name = name
        self.script = script if script is not None else Action()
        self.requests: list[Request] = []
        self.accepted = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = "%s:%d" % (host, self.port)
        self.conns: dict[int, socket.socket] = {}
        self.peak_connections = 0  # most connections open at once
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.accept_thread = threading.Thread(target=self._accept_loop, name="upstream-" + name, daemon=True)
        self.accept_thread.start()

    # -- control ----------------------------------------------------------------------------
    def set_script(self, script):
        with self.lock:
            self.script = script

    def reset_records(self):
        with self.lock:
            self.requests = []
            self.accepted = 0

    def wait_requests(self, n: int, timeout: float = 5.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        with self.lock:
            return list(self.requests)

    def request_list(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def stop(self):
        self.stop_event.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.accept_thread.join(2)
        for t in list(self.threads):
            t.join(2)

    # -- serving ----------------------------------------------------------------------------
    def _accept_loop(self):
        conn_id = 0
        while not self.stop_event.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn_id += 1
            with self.lock:
                self.accepted += 1
                self.conns[conn_id] = sock
                self.peak_connections = max(self.peak_connections, len(self.conns))
            t = threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, conn_id: int):
        sock.settimeout(30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(sock)
        try:
            for _ in range(100_000):
                if self.stop_event.is_set():
                    return
                try:
                    req = self._read_request(reader, conn_id)
                except (ConnectionClosed, socket.timeout, OSError):
                    return
                except ValueError as e:
                    self.errors.append("conn %d: %s" % (conn_id, e))
                    return
                with self.lock:
                    self.requests.append(req)
                    script = self.script
                action = script(req) if callable(script) else script
                if not self._respond(sock, req, action):
                    return
                if req.headers.tokens("connection").count("close") or req.version == "HTTP/1.0":
                    return
        finally:
            with self.lock:
                self.conns.pop(conn_id, None)
            try:
                sock.close()
            except OSError:
                pass

    def _read_request(self, reader: Reader, conn_id: int) -> Request:
        start, headers, raw = read_head(reader)
        parts = start.decode("latin-1").split(" ")
        if len(parts) != 3:
            raise ValueError("bad request line %r" % start)
        method, target, version = parts
        h = Headers(headers)
        trailers = []
        if "chunked" in h.tokens("transfer-encoding"):
            body, trailers = reader.read_chunked()
        elif h.get("content-length") is not None:
            body = reader.read_exact(int(h.get("content-length")))
        else:
            body = b""
        return Request(conn_id, method, target, version, h, body, trailers, raw, time.monotonic())

    def _respond(self, sock: socket.socket, req: Request, a: Action) -> bool:
        """Sends the response; False when the connection must not be reused."""
        if a.delay_ms:
            if self.stop_event.wait(a.delay_ms / 1000.0):
                return False
        if a.mode in ("never",):
            self.stop_event.wait(60)
            return False
        if a.mode == "reset":
            _reset(sock)
            return False
        if a.mode == "close":
            return False
        if a.mode == "raw_with_fin":
            send_with_fin(sock, a.body or b"")
            return False
        if a.echo:
            body = req.body
        elif a.body is not None:
            body = a.body
        else:
            body = ("upstream=%s method=%s target=%s\n" % (self.name, req.method, req.target)).encode()
        no_body_status = a.status in (204, 304) or 100 <= a.status < 200
        chunked = a.chunked or a.chunks is not None
        head = ["HTTP/1.1 %d %s" % (a.status, a.reason or REASONS.get(a.status, "Whatever"))]
        if a.upstream_header:
            head.append("X-Upstream: %s" % self.name)
        head += ["%s: %s" % (k, v) for k, v in a.headers]
        header_names = {k.lower() for k, _ in a.headers}
        if not no_body_status:
            if chunked:
                head.append("Transfer-Encoding: chunked")
            elif a.content_length and "content-length" not in header_names:
                head.append("Content-Length: %d" % len(body))
        if a.close:
            head.append("Connection: close")
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        send_body = not no_body_status and req.method != "HEAD"
        if chunked and send_body:
            chunks = a.chunks if a.chunks is not None else [
                body[i:i + a.chunk_size] for i in range(0, len(body), a.chunk_size)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
        elif send_body:
            payload = body
        else:
            payload = b""
        try:
            if a.mode in ("close_after_headers", "reset_after_headers"):
                sock.sendall(head_bytes)
                time.sleep(0.05)
                if a.mode == "reset_after_headers":
                    _reset(sock)
                return False
            if a.mode in ("close_mid_body", "reset_mid_body"):
                sock.sendall(head_bytes + payload[: len(payload) // 2])
                time.sleep(0.05)
                if a.mode == "reset_mid_body":
                    _reset(sock)
                return False
            sock.sendall(head_bytes)
            if payload:
                view = memoryview(payload)
                for i in range(0, len(view), 1 << 20):
                    sock.sendall(view[i:i + (1 << 20)])
        except OSError:
            return False
        if a.close or (not chunked and not a.content_length and send_body):
            return False
        return True


def send_with_fin(sock: socket.socket, data: bytes):
    """`data` and the FIN in one TCP segment (TCP_CORK), as a peer that writes its last bytes and
    closes can send them."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
