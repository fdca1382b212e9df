"""The real client address behind a load balancer: the PROXY protocol (v1, v2) on a listener, and
X-Forwarded-For from trusted proxies only. Rate limits keyed on client_ip and X-Forwarded-For use it."""
import os
import socket
import struct
import time

from fdtest import Client, build_request, make_config, manifest

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _listener(**extra):
    listener = {"name": "main", "address": "127.0.0.1:0", "default_environment": "production"}
    listener.update(extra)
    return {"listeners": [listener]}


def _v2(source, port=40000):
    addresses = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 80)
    return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def test_proxy_protocol_v1_and_v2_name_the_client(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], **_listener(proxy_protocol=True)))
    with Client(fd.port) as c:
        c.send(b"PROXY TCP4 192.0.2.9 127.0.0.1 51000 80\r\n" + build_request("GET", "/p/m/v1"))
        assert c.read_response().status == 200
        assert c.request("GET", "/p/m/again").status == 200  # the header comes once per connection
    with Client(fd.port) as c:
        c.send(_v2("198.51.100.4"))
        time.sleep(0.05)  # the request in a later segment than the header
        c.send(build_request("GET", "/p/m/v2"))
        assert c.read_response().status == 200
    with Client(fd.port) as c:
        c.send(b"PROXY TCP4 203.0.")  # a header split over two segments
        time.sleep(0.05)
        c.send(b"113.5 127.0.0.1 51000 80\r\n" + build_request("GET", "/p/m/split"))
        assert c.read_response().status == 200
    forwarded = [q.headers.get("X-Forwarded-For") for q in upstream.wait_requests(4)]
    assert forwarded == ["192.0.2.9", "192.0.2.9", "198.51.100.4", "203.0.113.5"]


def _cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_partial_proxy_header_waits_without_spinning(frontdoor, upstream):
    # Left in the socket, a partial header kept it readable: the wait for more completed at once,
    # again and again, and each such connection spun a worker until the header timeout.
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], **_listener(proxy_protocol=True)))
    with Client(fd.port) as v1, Client(fd.port) as v2:
        v1.send(b"PROXY TCP4 203.0.")
        v2.send(_v2("198.51.100.7")[:20])
        before = _cpu_seconds(fd.pid)
        time.sleep(1.5)
        spent = _cpu_seconds(fd.pid) - before
        assert spent < 0.3, "%.2f s of CPU in 1.5 s while two PROXY headers waited" % spent
        v1.send(b"113.5 127.0.0.1 51000 80\r\n" + build_request("GET", "/p/m/late"))
        v2.send(_v2("198.51.100.7")[20:] + build_request("GET", "/p/m/late2"))
        assert v1.read_response().status == 200
        assert v2.read_response().status == 200
    forwarded = sorted(q.headers.get("X-Forwarded-For") for q in upstream.wait_requests(2))
    assert forwarded == ["198.51.100.7", "203.0.113.5"]


def test_a_proxy_header_that_never_ends_is_closed_at_client_header_and_counted(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts={"client_header": "500ms"},
                               **_listener(proxy_protocol=True)))
    with Client(fd.port) as c:
        c.send(b"PROXY TCP4 203.0.")
        closed, _ = c.wait_closed(3)
        assert closed
    assert fd.metrics()["proxy_header_timeouts"] == 1


def test_a_connection_without_a_proxy_header_is_closed(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], **_listener(proxy_protocol=True)))
    with Client(fd.port) as c:
        c.send(build_request("GET", "/p/m/x"))
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", "no response on a listener that expects a PROXY header"
    assert upstream.request_list() == []
    assert fd.metrics()["proxy_protocol_errors"] == 1


def test_forwarded_for_from_a_trusted_proxy_names_the_client(frontdoor, upstream):
    m = manifest("p", "m", [upstream])
    cfg = make_config([m], **_listener(trusted_proxies=["127.0.0.0/8"]))
    cfg["rate_limits"] = [{"name": "per_client", "key": "client_ip", "requests_per_second": 1, "burst": 1}]
    fd = frontdoor(cfg)
    with Client(fd.port) as c:
        def status(xff):
            return c.request("GET", "/p/m/x", headers=(("X-Forwarded-For", xff),)).status

        assert status("1.1.1.1, 198.51.100.7") == 200
        assert status("198.51.100.8") == 200, "another client behind the same proxy has its own limit"
        assert status("9.9.9.9, 198.51.100.7") == 429, "the same client, whatever it claims further left"
    # The peer (the proxy) is appended: the upstream sees the whole chain.
    assert upstream.wait_requests(2)[0].headers.get("X-Forwarded-For") == "1.1.1.1, 198.51.100.7, 127.0.0.1"


def test_forwarded_for_from_an_untrusted_peer_is_not_believed(frontdoor, upstream):
    cfg = make_config([manifest("p", "m", [upstream])], **_listener(trusted_proxies=["10.0.0.0/8"]))
    cfg["rate_limits"] = [{"name": "per_client", "key": "client_ip", "requests_per_second": 1, "burst": 1}]
    fd = frontdoor(cfg)
    with Client(fd.port) as c:
        assert c.request("GET", "/p/m/1", headers=(("X-Forwarded-For", "198.51.100.1"),)).status == 200
        # A client rotating X-Forwarded-For does not escape its limit.
        assert c.request("GET", "/p/m/2", headers=(("X-Forwarded-For", "198.51.100.2"),)).status == 429


def test_a_connection_still_sending_its_proxy_header_does_not_hold_the_drain(frontdoor, upstream):
    # The drain closed idle connections, but not one whose PROXY header had not come yet: it held
    # the process up to client_header.
    import signal
    cfg = make_config([manifest("p", "m", [upstream])], **_listener(proxy_protocol=True),
                      timeouts={"client_header": "20s"}, server={"drain_timeout": "20s"})
    fd = frontdoor(cfg)
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
        c.sendall(b"PROXY TCP4 203.0.113.7 ")  # and no more
        time.sleep(0.3)
        started = time.monotonic()
        fd.signal(signal.SIGTERM)
        assert fd.wait(5) == 0
        assert time.monotonic() - started < 3
