"""Support code for the frontdoor end-to-end tests (standard library only).

- ScriptedUpstream: an exact HTTP/1.1 server on 127.0.0.1 in threads of the test process. It records
  every request (method, target, headers as a list, body, connection id) and answers per an Action
  (status/headers/body, chunked, delay, close/reset after headers or mid-body, never answer, echo).
- Frontdoor: launches the real binary on a YAML config written to a temporary directory, waits for its
  ports file, captures stdout/stderr to files, stops it with SIGTERM (SIGKILL as a last resort).
- Client helpers: raw sockets that send exact bytes and read one response with Content-Length,
  chunked or close-delimited framing.

Every blocking call here has a timeout; every loop is bounded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import Callable, Iterable, Optional, Union

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
    def __init__(self, name: str, script: Union[None, Action, Callable[[Request], Action]] = None, port: int = 0):
        self.name = name
        self.script = script if script is not None else Action()
        self.requests: list[Request] = []
        self.accepted = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOCALHOST, port))
        self.listener.listen(128)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = "%s:%d" % (LOCALHOST, self.port)
        self.conns: dict[int, socket.socket] = {}
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


def _reset(sock: socket.socket):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


# --------------------------------------------------------------------------------------------
# YAML (the subset our configs need) and config building
# --------------------------------------------------------------------------------------------

def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    return json.dumps(str(v))  # a JSON string is a valid double-quoted YAML scalar


def to_yaml(obj, indent: int = 0) -> str:
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, list) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, (list, dict)):
                out.append("%s%s: %s\n" % (pad, k, "[]" if isinstance(v, list) else "{}"))
            else:
                out.append("%s%s: %s\n" % (pad, k, _scalar(v)))
        return "".join(out)
    if isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                inner = to_yaml(item, indent + 2)
                out.append(pad + "- " + inner[indent + 2:])
            else:
                out.append("%s- %s\n" % (pad, _scalar(item)))
        return "".join(out)
    return pad + _scalar(obj) + "\n"


def manifest(project: str, module: str, endpoints: list, environment: str = "*", **extra) -> dict:
    m = {"project": project, "module": module, "environment": environment,
         "endpoints": [{"address": e.address if isinstance(e, ScriptedUpstream) else e} for e in endpoints]}
    m.update(extra)
    return m


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def make_config(manifests: list, **overrides) -> dict:
    """A complete config on 127.0.0.1:0 with test-friendly defaults; overrides merge by section."""
    cfg = {
        "server": {"workers": 1, "drain_timeout": "5s", "max_connections": 1000},
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "default_environment": "production"}],
        "limits": {"max_request_line_bytes": "8KiB", "max_header_bytes": "32KiB", "max_header_count": 100,
                   "max_body_bytes": 0},
        "timeouts": {"client_header": "5s", "client_idle": "10s", "client_body": "10s",
                     "upstream_connect": "2s", "upstream_response": "10s", "request_total": "0s"},
        "upstream_pool": {"max_idle_per_endpoint": 16, "idle_timeout": "30s"},
        "routing": {"environment_header": "X-Environment"},
        "logging": {"level": "info", "access_log": {"destination": "off", "format": "text"}},
        "manifests": manifests,
    }
    return _merge(cfg, overrides)


# --------------------------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------------------------

def frontdoor_bin() -> str:
    path = os.environ.get("FRONTDOOR_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.normpath(os.path.join(here, "..", "..", "build", "frontdoor"))
    return path


def require_binary() -> str:
    """Replaced by conftest with a version that fails the test cleanly."""
    path = frontdoor_bin()
    assert os.path.isfile(path) and os.access(path, os.X_OK), "FRONTDOOR_BIN (%s) is not executable" % path
    return path


def run_cli(args: list, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run([frontdoor_bin()] + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Frontdoor:
    """One frontdoor process. Use through the `frontdoor` fixture, which stops it (also on failure)."""

    def __init__(self, workdir: str, name: str = "fd"):
        self.workdir = workdir
        self.name = name
        self.proc: Optional[subprocess.Popen] = None
        self.ports: dict[str, int] = {}
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.ports_path = os.path.join(workdir, name + ".ports")
        self.config_path = os.path.join(workdir, name + ".yaml")
        self.returncode: Optional[int] = None
        self.expect_clean_exit = True

    def start(self, config: Union[dict, str, None] = None, argv: Optional[list] = None,
              listeners: Iterable[str] = ("main",), wait: float = 10.0) -> "Frontdoor":
        """Runs `frontdoor run -c CONFIG --ports-file F` (or `frontdoor ARGV...` when argv is given;
        "{ports}" in ARGV stands for the ports file path this launcher waits for)."""
        if argv is None:
            text = config if isinstance(config, str) else to_yaml(config)
            with open(self.config_path, "w") as f:
                f.write(text)
            argv = ["run", "-c", self.config_path, "--ports-file", self.ports_path]
        argv = [a.replace("{ports}", self.ports_path) for a in argv]
        self.argv = [frontdoor_bin()] + list(argv)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     cwd=self.workdir)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if os.path.exists(self.ports_path):
                ports = {}
                with open(self.ports_path) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) == 2:
                            ports[parts[0]] = int(parts[1])
                if all(l in ports for l in listeners):
                    self.ports = ports
                    return self
            if self.proc.poll() is not None:
                raise AssertionError("frontdoor exited with %s before writing its ports file\n%s"
                                     % (self.proc.returncode, self.logs()))
            time.sleep(0.02)
        raise AssertionError("frontdoor wrote no ports file within %.0f s\n%s" % (wait, self.logs()))

    @property
    def port(self) -> int:
        return self.ports["main"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code (negative = signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.returncode = "killed after %.1f s" % timeout
                self._close_files()
                return None
        self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def _close_files(self):
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f and not f.closed:
                f.close()

    def metrics(self, timeout: float = 5.0) -> dict:
        """Sends SIGUSR1 and returns the metrics line it logs, parsed."""
        before = self._metrics_lines()
        self.signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self._metrics_lines()
            if len(lines) > len(before):
                return json.loads(lines[-1].split(" metrics ", 1)[1])
            time.sleep(0.05)
        raise AssertionError("no metrics line after SIGUSR1\n" + self.logs())

    def _metrics_lines(self) -> list:
        return [l for l in (self.stderr() + self.stdout()).splitlines() if " metrics {" in l]

    def stdout(self) -> str:
        return _read_text(self.stdout_path)

    def stderr(self) -> str:
        return _read_text(self.stderr_path)

    def logs(self) -> str:
        cfg = _read_text(self.config_path) if os.path.exists(self.config_path) else "(none)"
        return ("---- %s argv: %s\n---- config:\n%s\n---- stdout:\n%s\n---- stderr:\n%s\n"
                % (self.name, " ".join(getattr(self, "argv", [])), cfg, self.stdout()[-20000:],
                   self.stderr()[-20000:]))


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


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

    def __init__(self, port: int, timeout: float = DEFAULT_TIMEOUT, host: str = LOCALHOST):
        self.sock = socket.create_connection((host, port), timeout=timeout)
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


# --------------------------------------------------------------------------------------------
# A real redis-server for the tests that need one
# --------------------------------------------------------------------------------------------

class RedisServer:
    """A private redis-server on a Unix socket in its own temporary directory (no TCP port, no
    persistence), started and stopped by PID. `command` speaks RESP over the socket."""

    def __init__(self, tcp_port: int = 0):
        import tempfile
        self.tcp_port = tcp_port  # 0: Unix socket only
        # Short path: Unix socket paths are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="fd-redis-")
        self.socket_path = os.path.join(self.dir, "redis.sock")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return "unix:" + self.socket_path

    def start(self, wait: float = 10.0) -> "RedisServer":
        binary = "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise AssertionError("redis-server is not installed (deploy/dev/install-deps.sh test)")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.tcp_port), "--bind", "127.0.0.1", "--unixsocket", self.socket_path, "--unixsocketperm", "700", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--enable-debug-command", "yes"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("redis-server did not answer within %.0f s:\n%s" % (wait, self.logs()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None) and not self._log.closed:
            self._log.close()

    def cleanup(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return _read_text(self.log_path)

    def command(self, *args, timeout: float = 5.0):
        """One command; returns str / int / list / None, raises RuntimeError on an error reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket_path)
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            return _resp_read(Reader(s))


def _resp_read(reader: Reader):
    line = reader.read_line().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read_exact(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(reader) for _ in range(n)]
    raise RuntimeError("bad RESP line %r" % line)
