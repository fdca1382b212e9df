"""What the proxy changes on the way: methods, hop-by-hop fields, X-Forwarded-*, Via, X-Request-Id."""
import re

import pytest

from fdtest import Action, Client, make_config, manifest, request

# RFC 9110 §7.6.1. `Trailer` is not among them: it announces the trailer fields that chunked
# bodies carry through the proxy unchanged, so it is forwarded with them.
HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "te", "upgrade")


@pytest.fixture
def proxy(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    return fd, upstream


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_are_forwarded(proxy, method):
    fd, up = proxy
    body = b"payload-" + method.encode() if method in ("POST", "PUT", "PATCH") else None
    r = request(fd.port, method, "/p/m/thing?id=3", body=body)
    assert r.status == 200
    assert r.body == ("upstream=a method=%s target=/p/m/thing?id=3\n" % method).encode()
    [got] = up.request_list()
    assert (got.method, got.target) == (method, "/p/m/thing?id=3")
    assert got.body == (body or b"")


def test_head_is_forwarded_and_has_no_body(proxy):
    fd, up = proxy
    up.set_script(Action(body=b"x" * 100))
    with Client(fd.port) as c:
        r = c.request("HEAD", "/p/m/doc")
        assert r.status == 200
        assert r.headers.get("Content-Length") == "100"
        # No body bytes may follow: the next response on this connection must parse cleanly.
        r2 = c.request("GET", "/p/m/doc")
        assert r2.status == 200 and r2.body == b"x" * 100
    assert [q.method for q in up.request_list()] == ["HEAD", "GET"]


def test_request_headers_kept_and_hop_by_hop_removed(proxy):
    fd, up = proxy
    headers = [
        ("X-Custom", "one"),
        ("Accept", "text/plain"),
        ("Cookie", "a=1; b=2"),
        ("Connection", "keep-alive, X-Secret"),
        ("X-Secret", "must not pass"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("X-Custom-Multi", "v1"),
        ("X-Custom-Multi", "v2"),
    ]
    r = request(fd.port, "GET", "/p/m/h", headers=headers)
    assert r.status == 200
    [got] = up.request_list()
    h = got.headers
    assert h.get_all("X-Custom") == ["one"]
    assert h.get("Accept") == "text/plain"
    assert h.get("Cookie") == "a=1; b=2"
    assert h.joined("X-Custom-Multi") == "v1, v2"
    assert "x-secret" not in h, "header named in Connection was forwarded: %r" % h
    assert h.get("Trailer") == "X-Checksum"
    for name in ("keep-alive", "proxy-connection", "te"):
        assert name not in h, "hop-by-hop %s forwarded: %r" % (name, h)
    # The proxy may send its own Connection field to the upstream, but not the client's tokens.
    assert "x-secret" not in h.tokens("connection")
    assert h.get("Host") == "fd.test"


def test_upgrade_header_is_not_forwarded(proxy):
    fd, up = proxy
    r = request(fd.port, "GET", "/p/m/u", headers=[("Upgrade", "h2c"), ("X-After", "1")])
    assert r.status == 200
    [got] = up.request_list()
    assert "upgrade" not in got.headers, got.headers
    assert got.headers.get("X-After") == "1"


def test_x_forwarded_and_via_set(proxy):
    fd, up = proxy
    r = request(fd.port, "GET", "/p/m/f", host="shop.example:8443")
    assert r.status == 200
    [got] = up.request_list()
    h = got.headers
    assert h.joined("X-Forwarded-For") == "127.0.0.1"
    assert h.joined("X-Forwarded-Proto") == "http"
    assert h.joined("X-Forwarded-Host") == "shop.example:8443"
    assert h.joined("Via") == "1.1 frontdoor"
    assert h.get_all("Host") == ["shop.example:8443"]


def test_x_forwarded_for_and_via_are_appended(proxy):
    fd, up = proxy
    r = request(fd.port, "GET", "/p/m/f",
                headers=[("X-Forwarded-For", "1.2.3.4"), ("Via", "1.0 edge-cache")])
    assert r.status == 200
    h = up.request_list()[0].headers
    assert h.joined("X-Forwarded-For") == "1.2.3.4, 127.0.0.1"
    assert h.joined("Via") == "1.0 edge-cache, 1.1 frontdoor"


CLAIMS = [("Forwarded", "for=6.6.6.6;proto=https;host=evil"), ("X-Forwarded-Port", "1"),
          ("X-Forwarded-Prefix", "/admin"), ("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin")]


def test_an_untrusted_client_cannot_claim_an_address_a_scheme_or_a_url(proxy):
    """Upstreams read these as the proxy's word (Symfony routes on X-Original-URL; CGI reads
    X_Forwarded_For as X-Forwarded-For): from a peer that is not a trusted proxy they are dropped,
    and X-Real-IP is always the client frontdoor identified."""
    fd, up = proxy
    sent = CLAIMS + [("X-Real-IP", "6.6.6.6"), ("X_Forwarded_For", "6.6.6.6"), ("x_real_ip", "6.6.6.6"),
                     ("Content_Length", "5"), ("X_Custom", "kept")]
    r = request(fd.port, "GET", "/p/m/claims", headers=sent)
    assert r.status == 200
    h = up.request_list()[0].headers
    for name, _ in CLAIMS + [("X_Forwarded_For", ""), ("x_real_ip", ""), ("Content_Length", "")]:
        assert h.get(name) is None, (name, h)
    assert h.get_all("X-Real-IP") == ["127.0.0.1"]
    assert h.get("X_Custom") == "kept"  # an underscore alone is not a claim


def test_a_trusted_proxy_passes_its_claims_on(frontdoor, upstream):
    cfg = make_config([manifest("p", "m", [upstream])])
    cfg["listeners"][0]["trusted_proxies"] = ["127.0.0.0/8"]
    fd = frontdoor(cfg)
    r = request(fd.port, "GET", "/p/m/claims", headers=CLAIMS + [("X-Forwarded-For", "203.0.113.9"),
                                                                 ("X-Real-IP", "6.6.6.6")])
    assert r.status == 200
    h = upstream.request_list()[0].headers
    for name, value in CLAIMS:
        assert h.get(name) == value, (name, h)
    assert h.get_all("X-Real-IP") == ["203.0.113.9"]  # the client the trusted proxy named


def test_request_id_generated_and_returned(proxy):
    fd, up = proxy
    r1 = request(fd.port, "GET", "/p/m/1")
    r2 = request(fd.port, "GET", "/p/m/2")
    assert r1.status == r2.status == 200
    ids_up = [q.headers.get_all("X-Request-Id") for q in up.request_list()]
    assert all(len(i) == 1 for i in ids_up), ids_up
    id1, id2 = ids_up[0][0], ids_up[1][0]
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", id1), id1
    assert id1 != id2
    assert r1.headers.get_all("X-Request-Id") == [id1]
    assert r2.headers.get_all("X-Request-Id") == [id2]


def test_request_id_propagated_unchanged(proxy):
    fd, up = proxy
    r = request(fd.port, "GET", "/p/m/1", headers=[("X-Request-Id", "client-id-123")])
    assert r.status == 200
    assert up.request_list()[0].headers.get_all("X-Request-Id") == ["client-id-123"]
    assert r.headers.get_all("X-Request-Id") == ["client-id-123"]


def test_response_headers_kept_and_hop_by_hop_removed(proxy):
    fd, up = proxy
    up.set_script(Action(headers=[
        ("X-Kept", "yes"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Cache-Control", "no-store"),
        ("Connection", "keep-alive, X-Upstream-Secret"),
        ("X-Upstream-Secret", "hidden"),
        ("Keep-Alive", "timeout=30"),
        ("Proxy-Connection", "keep-alive"),
    ], body=b"body!"))
    r = request(fd.port, "GET", "/p/m/r")
    assert r.status == 200
    assert r.body == b"body!"
    h = r.headers
    assert h.get("X-Kept") == "yes"
    assert h.get("X-Upstream") == "a"
    assert h.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert h.get("Cache-Control") == "no-store"
    assert "x-upstream-secret" not in h, h
    assert "keep-alive" not in h, h
    assert "proxy-connection" not in h, h
    assert "x-upstream-secret" not in h.tokens("connection")


def test_response_status_and_reason_passed_through(proxy):
    fd, up = proxy
    up.set_script(Action(status=418, reason="I'm a teapot", body=b"short and stout"))
    r = request(fd.port, "GET", "/p/m/tea")
    assert (r.status, r.body) == (418, b"short and stout")
    up.set_script(Action(status=503, body=b"busy", headers=[("Retry-After", "7")]))
    r = request(fd.port, "GET", "/p/m/busy")
    assert (r.status, r.body, r.headers.get("Retry-After")) == (503, b"busy", "7")
