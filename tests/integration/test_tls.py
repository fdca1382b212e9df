"""TLS termination: a listener with `tls:` speaks HTTPS, the upstream side stays plain HTTP."""
import http.client
import os
import ssl
import subprocess

import pytest

from fdtest import make_config, manifest


@pytest.fixture
def certificate(tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    return cert, key


def tls_config(upstream, cert, key):
    cfg = make_config([manifest("*", "*", [upstream])])
    cfg["listeners"][0]["tls"] = {"certificate_file": cert, "private_key_file": key}
    return cfg


def test_https_request_is_proxied_with_forwarded_proto(frontdoor, upstream, certificate):
    cert, key = certificate
    fd = frontdoor(tls_config(upstream, cert, key))
    context = ssl.create_default_context(cafile=cert)
    conn = http.client.HTTPSConnection("localhost", fd.port, context=context, timeout=5)
    try:
        for i in range(3):  # keep-alive over one TLS connection
            conn.request("POST", "/a/b/%d" % i, body=b"x" * 1000)
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200
            assert r.getheader("X-Upstream") == "a"
            assert body.startswith(b"upstream=a method=POST target=/a/b/%d" % i)
    finally:
        conn.close()
    requests = upstream.request_list()
    assert len(requests) == 3
    assert requests[0].headers.get("X-Forwarded-Proto") == "https"
    assert requests[0].body == b"x" * 1000


def test_plain_http_on_tls_listener_is_closed(frontdoor, upstream, certificate):
    cert, key = certificate
    fd = frontdoor(tls_config(upstream, cert, key))
    import socket
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"HTTP/1.1 200" not in data
    assert upstream.request_list() == []


def test_silent_connects_to_a_tls_port_cannot_lock_clients_out(frontdoor, upstream, certificate):
    # A connection still in its handshake was not reclaimable: a few bare connects held every slot
    # of max_connections (evicting idle clients) until timeouts.client_header.
    import socket
    cert, key = certificate
    cfg = tls_config(upstream, cert, key)
    cfg["server"] = {"workers": 1, "max_connections": 4}
    fd = frontdoor(cfg)
    context = ssl.create_default_context(cafile=cert)
    silent = [socket.create_connection(("127.0.0.1", fd.port), timeout=5) for _ in range(8)]
    try:
        for i in range(3):
            conn = http.client.HTTPSConnection("localhost", fd.port, context=context, timeout=5)
            try:
                conn.request("GET", "/a/b/%d" % i)
                assert conn.getresponse().status == 200
            finally:
                conn.close()
    finally:
        for s in silent:
            s.close()
    assert fd.metrics()["connections_reclaimed"] >= 4


def test_bad_certificate_path_fails_at_start(tmp_path, upstream):
    from fdtest import Frontdoor
    cfg = tls_config(upstream, str(tmp_path / "missing.pem"), str(tmp_path / "missing.key"))
    fd = Frontdoor(str(tmp_path), "badtls")
    with pytest.raises(Exception):
        fd.start(cfg)
    fd.stop(timeout=5)
    assert fd.returncode not in (0, None)
    assert "missing.pem" in fd.logs()
