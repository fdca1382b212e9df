"""TLS termination: a listener with `tls:` speaks HTTPS, the upstream side stays plain HTTP."""
import http.client
import os
import re
import ssl
import subprocess
import time

import pytest

from fdtest import make_config, manifest, read_until_closed


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


def test_plain_http_on_tls_listener_is_answered_with_a_400_in_plain_http(frontdoor, upstream, certificate):
    # It was closed without a word: curl said "connection reset" or "empty reply", and nothing told
    # the operator of the misconfigured client why. nginx answers such a request with a 400.
    cert, key = certificate
    fd = frontdoor(tls_config(upstream, cert, key))
    import socket
    for body in (b"", b"x" * 200000):  # the rest of a large request must not reset the answer away
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) if body else \
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as s:
            s.sendall(head)
            try:
                s.sendall(body)
            except ConnectionError:
                pass  # the answer came, and the linger ended, before all of it was sent
            data, how = read_until_closed(s, 5)
        assert how == "closed", how
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data[:200]
        assert b"Connection: close\r\n" in data and b"plain HTTP sent to a TLS port: use https://" in data
    assert upstream.request_list() == []
    assert fd.metrics()["tls_handshake_plain_http"] == 2
    # The next client of the port is served over TLS as ever.
    context = ssl.create_default_context(cafile=cert)
    conn = http.client.HTTPSConnection("localhost", fd.port, context=context, timeout=5)
    conn.request("GET", "/a/b")
    assert conn.getresponse().status == 200
    conn.close()


def test_tls_handshake_failures_are_counted_by_cause(frontdoor, upstream, certificate):
    cert, key = certificate
    fd = frontdoor(tls_config(upstream, cert, key))
    import socket
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until_closed(s, 5)
    # Counted by cause (it left no trace below the debug log): plain HTTP, a client that left (a
    # TCP health check), a real failure (TLS 1.0 is refused).
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5):
        pass
    old_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_client.check_hostname, old_client.verify_mode = False, ssl.CERT_NONE
    old_client.minimum_version = old_client.maximum_version = ssl.TLSVersion.TLSv1
    try:
        with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as raw:
            old_client.wrap_socket(raw, server_hostname="localhost")
    except (ssl.SSLError, ConnectionError):
        pass
    time.sleep(0.3)
    m = fd.metrics()
    assert (m["tls_handshake_plain_http"], m["tls_handshake_closed"], m["tls_handshake_failed"]) == (1, 1, 1), m


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


def test_an_unfinished_handshake_is_closed_at_client_header_and_counted(frontdoor, upstream, certificate):
    import socket
    cert, key = certificate
    cfg = tls_config(upstream, cert, key)
    cfg["timeouts"] = {"client_header": "500ms"}
    fd = frontdoor(cfg)
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as silent:
        t0 = time.monotonic()
        try:
            assert silent.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 3
    assert fd.metrics()["tls_handshake_timeouts"] == 1


def test_bad_certificate_path_fails_at_start(tmp_path, upstream):
    from fdtest import Frontdoor
    cfg = tls_config(upstream, str(tmp_path / "missing.pem"), str(tmp_path / "missing.key"))
    fd = Frontdoor(str(tmp_path), "badtls")
    with pytest.raises(Exception):
        fd.start(cfg)
    fd.stop(timeout=5)
    assert fd.returncode not in (0, None)
    assert "missing.pem" in fd.logs()


def _new_certificate(directory):
    os.makedirs(directory)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    return cert, key


def _served_certificate(port):
    """The DER certificate a new TLS connection to `port` is shown."""
    import socket
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def _der(cert_path):
    return ssl.PEM_cert_to_DER_cert(open(cert_path).read())


class _MountedSecret:
    """A Kubernetes Secret as the kubelet mounts it: tls.crt -> ..data/tls.crt, ..data -> ..<version>;
    an update writes a new version directory and swaps ..data in one rename."""

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(self.root)
        self.version = 0
        self.cert, self.key = os.path.join(self.root, "tls.crt"), os.path.join(self.root, "tls.key")

    def update(self, cert, key):
        self.version += 1
        version_dir = os.path.join(self.root, "..v%d" % self.version)
        os.makedirs(version_dir)
        for src, name in ((cert, "tls.crt"), (key, "tls.key")):
            with open(src, "rb") as f, open(os.path.join(version_dir, name), "wb") as out:
                out.write(f.read())
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink("..v%d" % self.version, tmp)
        os.replace(tmp, os.path.join(self.root, "..data"))
        for name in ("tls.crt", "tls.key"):
            if not os.path.islink(os.path.join(self.root, name)):
                os.symlink(os.path.join("..data", name), os.path.join(self.root, name))


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_certificate_renewed_under_the_same_paths_is_served(frontdoor, upstream, tmp_path):
    """cert-manager renews a certificate by rewriting its Secret: the files change under the same
    paths and nobody sends a SIGHUP. The old certificate must not serve on until it expires."""
    first, second, third = (_new_certificate(str(tmp_path / n)) for n in ("first", "second", "third"))
    secret = _MountedSecret(tmp_path / "secret")
    secret.update(*first)
    cfg = tls_config(upstream, secret.cert, secret.key)
    cfg["server"] = {"certificate_check_interval": "100ms"}
    fd = frontdoor(cfg)
    assert _served_certificate(fd.port) == _der(first[0])
    context = ssl.create_default_context(cafile=first[0])
    kept = http.client.HTTPSConnection("localhost", fd.port, context=context, timeout=5)
    try:
        kept.request("GET", "/a/b/1")
        r = kept.getresponse()
        assert (r.status, bool(r.read())) == (200, True)
        secret.update(*second)
        assert _wait_for(lambda: _served_certificate(fd.port) == _der(second[0]), 5), fd.logs()
        assert "certificate renewed" in fd.logs()
        kept.request("GET", "/a/b/2")  # a connection made before the renewal is not cut
        assert kept.getresponse().status == 200
    finally:
        kept.close()
    # A renewal whose key is not the certificate's: said once, and the previous one serves on.
    secret.update(third[0], second[1])
    assert _wait_for(lambda: "the previous certificate serves on" in fd.logs(), 5), fd.logs()
    time.sleep(0.5)
    assert fd.logs().count("the previous certificate serves on") == 1
    assert _served_certificate(fd.port) == _der(second[0])
    secret.update(*third)
    assert _wait_for(lambda: _served_certificate(fd.port) == _der(third[0]), 5), fd.logs()


def test_an_encrypted_key_fails_at_start_and_never_asks_for_a_passphrase(tmp_path, upstream):
    # OpenSSL's default was to ask on the terminal: with one (a `docker run -it`, an operator's
    # shell) the daemon hung at "Enter PEM pass phrase:", and a renewal would hang the control thread.
    from fdtest import frontdoor_bin, to_yaml
    cert, key = _new_certificate(str(tmp_path / "c"))
    encrypted = str(tmp_path / "encrypted.key")
    subprocess.run(["openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:secret", "-out", encrypted],
                   check=True, capture_output=True, timeout=30)
    config = tmp_path / "frontdoor.yaml"
    cfg = tls_config(upstream, cert, encrypted)
    cfg["listeners"][0]["address"] = "127.0.0.1:0"
    config.write_text(to_yaml(cfg))
    # `script` gives the daemon a controlling terminal, as an interactive shell would.
    run = subprocess.run(["script", "-qec", "%s run -c %s" % (frontdoor_bin(), config), "/dev/null"],
                         capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert "pass phrase" not in run.stdout
    assert "private key %s: it is encrypted (a passphrase cannot be given)" % encrypted in run.stdout, run.stdout


def _certificate_valid_between(directory, start, end):
    """A self-signed certificate for localhost valid from `start` to `end` (UTC, YYYYMMDDHHMMSSZ)."""
    os.makedirs(directory)
    cert, key, csr = (os.path.join(directory, n) for n in ("cert.pem", "key.pem", "csr.pem"))
    with open(os.path.join(directory, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
                "default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n")
    open(os.path.join(directory, "index.txt"), "w").close()
    with open(os.path.join(directory, "serial"), "w") as f:
        f.write("01\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", csr], check=True, capture_output=True, timeout=30)
    subprocess.run(["openssl", "ca", "-config", "ca.cnf", "-selfsign", "-keyfile", key, "-in", csr, "-startdate",
                    start, "-enddate", end, "-batch", "-notext", "-out", cert], check=True, capture_output=True,
                   timeout=30, cwd=directory)
    return cert, key


def _not_after(cert):
    import calendar
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-enddate"], check=True, capture_output=True,
                         text=True).stdout.strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(out, "%b %d %H:%M:%S %Y GMT"))


def test_a_renewed_certificate_that_is_not_valid_now_is_refused_and_its_expiry_is_a_metric(frontdoor, upstream,
                                                                                           tmp_path):
    # A renewal that had expired, or was not valid yet, was taken without a word: every client then
    # refused the listener. Nor could an operator see when the serving certificate expires.
    first = _new_certificate(str(tmp_path / "first"))
    expired = _certificate_valid_between(str(tmp_path / "expired"), "20200101000000Z", "20200102000000Z")
    future = _certificate_valid_between(str(tmp_path / "future"), "20990101000000Z", "20990102000000Z")
    second = _new_certificate(str(tmp_path / "second"))
    secret = _MountedSecret(tmp_path / "secret")
    secret.update(*first)
    cfg = tls_config(upstream, secret.cert, secret.key)
    cfg["server"] = {"certificate_check_interval": "100ms"}
    cfg["admin"] = {"address": "127.0.0.1:0"}
    fd = frontdoor(cfg, listeners=("main", "admin"))

    def expiry():
        c = http.client.HTTPConnection("127.0.0.1", fd.ports["admin"], timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        m = re.search(r'^fd_tls_certificate_expiry_timestamp_seconds\{listener="main"\} (\S+)$', text, re.M)
        return float(m.group(1)) if m else None

    assert expiry() == _not_after(first[0])
    secret.update(*expired)
    said = "its renewed certificate %s expired on 2020-01-02 00:00:00 UTC; the previous certificate serves on" % secret.cert
    assert _wait_for(lambda: said in fd.logs(), 5), fd.logs()
    secret.update(*future)
    said = "is not valid before 2099-01-01 00:00:00 UTC; the previous certificate serves on until then"
    assert _wait_for(lambda: said in fd.logs(), 5), fd.logs()
    time.sleep(0.5)  # checked five times more: said once
    assert fd.logs().count("the previous certificate serves on") == 2
    assert _served_certificate(fd.port) == _der(first[0])
    assert expiry() == _not_after(first[0])
    secret.update(*second)
    assert _wait_for(lambda: _served_certificate(fd.port) == _der(second[0]), 5), fd.logs()
    assert expiry() == _not_after(second[0])


def test_an_expired_certificate_at_start_is_served_with_a_warning(frontdoor, upstream, tmp_path):
    cert, key = _certificate_valid_between(str(tmp_path / "old"), "20200101000000Z", "20200102000000Z")
    fd = frontdoor(tls_config(upstream, cert, key))
    assert "its certificate %s expired on 2020-01-02 00:00:00 UTC: clients will refuse it" % cert in fd.logs()
    assert _served_certificate(fd.port) == _der(cert)


def test_a_reload_reads_a_renewed_certificate(frontdoor, upstream, tmp_path):
    first, second = (_new_certificate(str(tmp_path / n)) for n in ("first", "second"))
    secret = _MountedSecret(tmp_path / "secret")
    secret.update(*first)
    cfg = tls_config(upstream, secret.cert, secret.key)
    cfg["server"] = {"certificate_check_interval": "0s"}  # only a reload reads them
    fd = frontdoor(cfg)
    assert _served_certificate(fd.port) == _der(first[0])
    secret.update(*second)
    time.sleep(0.3)
    assert _served_certificate(fd.port) == _der(first[0])
    fd.reload(cfg)
    assert _served_certificate(fd.port) == _der(second[0])


def test_a_touched_certificate_is_not_read_again(frontdoor, upstream, tmp_path):
    # Each re-read makes a context that is kept for good: a sidecar that rewrites the same bytes, or a
    # touch, every few seconds grew the process without end.
    cert, key = _new_certificate(str(tmp_path / "c"))
    cfg = tls_config(upstream, cert, key)
    cfg["server"] = {"certificate_check_interval": "100ms"}
    fd = frontdoor(cfg)
    for _ in range(5):
        os.utime(cert)
        with open(key, "rb") as f:
            data = f.read()
        with open(key, "wb") as f:  # the same bytes, written again
            f.write(data)
        time.sleep(0.25)
    assert "certificate renewed" not in fd.logs()
    assert _served_certificate(fd.port) == _der(cert)


def test_tls_1_2_takes_only_forward_secret_aead_suites(frontdoor, upstream, certificate):
    import socket
    cert, key = certificate
    fd = frontdoor(tls_config(upstream, cert, key))

    def handshake(cipher):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(cipher)
        with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                return s.cipher()[0]

    assert handshake("ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"
    for weak in ("AES128-SHA", "AES256-SHA256", "ECDHE-RSA-AES128-SHA"):  # no forward secrecy / CBC
        with pytest.raises((ssl.SSLError, ConnectionError)):
            handshake(weak)


def test_a_response_that_ends_the_connection_ends_with_close_notify(frontdoor, upstream, certificate):
    # Only the TCP connection was closed: a client could not tell a body delimited by the close from
    # one cut short (a truncation attack), and strict clients (OpenSSL 3's s_client here) failed every
    # such response with "unexpected eof while reading".
    from fdtest import Action
    cert, key = certificate
    upstream.set_script(Action(body=b"z" * 100000, content_length=False))
    fd = frontdoor(tls_config(upstream, cert, key))
    for request in (b"GET /a/b/close-delimited HTTP/1.1\r\nHost: localhost\r\n\r\n",
                    b"GET /a/b/asked HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % fd.port, "-quiet", "-ign_eof"],
                           input=request, capture_output=True, timeout=10)
        assert r.stdout.startswith(b"HTTP/1.1 200") and r.stdout.endswith(b"z" * 1000), r.stdout[:200]
        assert b"unexpected eof" not in r.stderr and r.returncode == 0, r.stderr


def test_a_body_too_slow_over_tls_gets_its_408_then_close_notify(frontdoor, upstream, certificate):
    # The 408 went out while the body's read was outstanding: the close_notify waited for that read,
    # which waited for the client, and the connection was closed bare 2 s later.
    cert, key = certificate
    cfg = tls_config(upstream, cert, key)
    cfg["timeouts"] = {"client_body": "1s"}
    fd = frontdoor(cfg)
    started = time.monotonic()
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % fd.port, "-quiet", "-ign_eof"],
                       input=b"POST /a/b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n" + b"x" * 10,
                       capture_output=True, timeout=10)
    assert r.stdout.startswith(b"HTTP/1.1 408"), r.stdout[:200]
    assert b"unexpected eof" not in r.stderr and r.returncode == 0, r.stderr
    assert time.monotonic() - started < 2.5


def test_a_head_too_slow_over_tls_gets_its_408(frontdoor, upstream, certificate):
    # A plain connection got the 408; a TLS one got a bare close, while the access log said 408.
    import socket
    cert, key = certificate
    cfg = tls_config(upstream, cert, key)
    cfg["timeouts"] = {"client_header": "500ms"}
    fd = frontdoor(cfg)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /a/b/slow HTTP/1.1\r\nHost: local")  # and no more
            started = time.monotonic()
            data, _ = read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert time.monotonic() - started < 3
