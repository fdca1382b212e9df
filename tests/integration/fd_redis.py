"""A real redis-server for the tests that need one, on a Unix socket, started and stopped by PID."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Optional
from fd_daemon import _read_text
from fd_wire import Reader


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
