"""Listeners: a port another process holds is refused at start, not silently shared (SO_REUSEPORT);
accepted connections have Nagle's algorithm off."""
import ctypes
import errno
import os
import socket
import subprocess

import pytest

from fdtest import build_request, frontdoor_bin, make_config, manifest, to_yaml


def test_second_instance_on_a_taken_port_fails(frontdoor, upstream, tmp_path):
    fd = frontdoor(make_config([manifest("*", "*", [upstream])]))
    cfg = make_config([manifest("*", "*", [upstream])], listeners=[{"name": "main", "address": "127.0.0.1:%d" % fd.port}])
    path = tmp_path / "second.yaml"
    path.write_text(to_yaml(cfg))
    r = subprocess.run([frontdoor_bin(), "run", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "Address already in use" in r.stderr
    assert fd.running()


def _daemon_socket_of(pid: int, client: socket.socket) -> socket.socket:
    """The daemon's end of `client`'s connection, duplicated into this process (pidfd_getfd)."""
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir("/proc/%d/fd" % pid):
            try:
                if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = ctypes.CDLL(None, use_errno=True).syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                err = ctypes.get_errno()
                if err in (errno.EPERM, errno.ENOSYS):
                    pytest.skip("pidfd_getfd: %s" % os.strerror(err))
                continue
            s = socket.socket(fileno=fd)
            try:
                if s.type == socket.SOCK_STREAM and s.getpeername() == client.getsockname():
                    return s
            except OSError:
                pass
            s.close()
    finally:
        os.close(pidfd)
    raise AssertionError("no socket of the daemon is connected to %r" % (client.getsockname(),))


SYS_PIDFD_GETFD = 438  # x86-64 and arm64 alike


def test_accepted_connections_have_nagle_off(frontdoor, upstream):
    # Set once on the listening socket and inherited by every accepted one (no setsockopt per
    # connection): without it, a response written in two parts can wait on a delayed ACK.
    fd = frontdoor(make_config([manifest("*", "*", [upstream])]))
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
        c.sendall(build_request("GET", "/x"))
        assert c.recv(65536).startswith(b"HTTP/1.1 200")
        with _daemon_socket_of(fd.proc.pid, c) as server_side:
            assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
