"""Request smuggling defences (RFC 9112 §6 and friends): refuse with 400, close, never forward."""
import time

import pytest

from fdtest import Client, build_request, make_config, manifest

H = b"Host: fd.test\r\n"

# (id, raw request, accepted statuses). Every request targets /p/m/<id> so the upstream check is exact.
CASES = [
    ("cl-and-te", b"POST /p/m/cl-and-te HTTP/1.1\r\n" + H
     + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("te-and-cl", b"POST /p/m/te-and-cl HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", {400}),
    ("two-cl", b"POST /p/m/two-cl HTTP/1.1\r\n" + H
     + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {400}),
    ("cl-list", b"POST /p/m/cl-list HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", {400}),
    ("cl-plus", b"POST /p/m/cl-plus HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", {400}),
    ("cl-space", b"POST /p/m/cl-space HTTP/1.1\r\n" + H + b"Content-Length: 5 5\r\n\r\nhello", {400}),
    ("cl-alpha", b"POST /p/m/cl-alpha HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\nhello", {400}),
    ("cl-negative", b"POST /p/m/cl-negative HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\nhello", {400}),
    ("cl-hex", b"POST /p/m/cl-hex HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", {400}),
    ("cl-huge", b"POST /p/m/cl-huge HTTP/1.1\r\n" + H
     + b"Content-Length: 99999999999999999999999999\r\n\r\nhello", {400, 413}),
    ("te-gzip-chunked", b"POST /p/m/te-gzip-chunked HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-chunked-gzip", b"POST /p/m/te-chunked-gzip HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-identity", b"POST /p/m/te-identity HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-xchunked", b"POST /p/m/te-xchunked HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-chunked-twice", b"POST /p/m/te-chunked-twice HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-http10", b"POST /p/m/te-http10 HTTP/1.0\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", {400}),
    ("bare-lf", b"GET /p/m/bare-lf HTTP/1.1\nHost: fd.test\n\n", {400}),
    ("bare-lf-one-field", b"GET /p/m/bare-lf-one-field HTTP/1.1\r\nHost: fd.test\nX-A: b\r\n\r\n", {400}),
    ("bare-cr", b"GET /p/m/bare-cr HTTP/1.1\r\nHost: fd.test\rX-A: b\r\n\r\n", {400}),
    ("obs-fold-space", b"GET /p/m/obs-fold-space HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", {400}),
    ("obs-fold-tab", b"GET /p/m/obs-fold-tab HTTP/1.1\r\n" + H + b"X-A: b\r\n\tc\r\n\r\n", {400}),
    ("space-before-colon-host", b"GET /p/m/space-before-colon-host HTTP/1.1\r\nHost : fd.test\r\n\r\n", {400}),
    ("space-before-colon-cl", b"POST /p/m/space-before-colon-cl HTTP/1.1\r\n" + H
     + b"Content-Length : 5\r\n\r\nhello", {400}),
    ("space-before-colon-te", b"POST /p/m/space-before-colon-te HTTP/1.1\r\n" + H
     + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", {400}),
    ("chunk-size-invalid", b"POST /p/m/chunk-size-invalid HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-negative", b"POST /p/m/chunk-size-negative HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-overflow", b"POST /p/m/chunk-size-overflow HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff1\r\nhello\r\n0\r\n\r\n", {400, 413}),
    ("chunk-data-too-long", b"POST /p/m/chunk-data-too-long HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-space", b"POST /p/m/chunk-size-space HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n5 5\r\nhello\r\n0\r\n\r\n", {400}),
    ("missing-host", b"GET /p/m/missing-host HTTP/1.1\r\nX-A: b\r\n\r\n", {400}),
    ("two-hosts", b"GET /p/m/two-hosts HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", {400}),
    ("nul-in-value", b"GET /p/m/nul-in-value HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", {400}),
    ("field-without-colon", b"GET /p/m/field-without-colon HTTP/1.1\r\n" + H + b"X-A b\r\n\r\n", {400}),
    # Host goes on to the upstream and to X-Forwarded-Host: only an authority (RFC 9112 §3.2).
    ("host-not-an-authority", b"GET /p/m/host-not-an-authority HTTP/1.1\r\nHost: evil.example/../x @y\r\n\r\n", {400}),
    ("host-with-userinfo", b"GET /p/m/host-with-userinfo HTTP/1.1\r\nHost: u@fd.test\r\n\r\n", {400}),
    # A trailer section is relayed as it came: a line that is not a field line is a request to a loose reader.
    ("trailer-request-line", b"POST /p/m/trailer-request-line HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\nX\r\nGET /p/m/trailer-request-line-hidden HTTP/1.1\r\n"
     + H + b"\r\n", {400}),
    ("trailer-without-colon", b"POST /p/m/trailer-without-colon HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-A b\r\n\r\n", {400}),
]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    # One daemon for all cases (fast); each case uses its own path, checked at the upstream.
    from fdtest import Frontdoor, ScriptedUpstream, require_binary
    require_binary()
    up = ScriptedUpstream("a")
    fd = Frontdoor(str(tmp_path_factory.mktemp("smuggling")), "fd")
    try:
        fd.start(make_config([manifest("p", "m", [up])], timeouts={"client_header": "2s", "client_body": "2s"}))
    except Exception:
        up.stop()
        raise
    yield fd, up
    rc = fd.stop(10)
    up.stop()
    assert rc == 0, "frontdoor exit code %r\n%s" % (fd.returncode, fd.logs())


@pytest.mark.parametrize("case,raw,statuses", CASES, ids=[c[0] for c in CASES])
def test_smuggling_refused(proxy, case, raw, statuses):
    fd, up = proxy
    with Client(fd.port, timeout=2.5) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status in statuses, "%s: got %d, expected one of %s: %r" % (case, r.status, sorted(statuses), r)
        c.assert_closed(3)
    time.sleep(0.05)
    leaked = [q for q in up.request_list() if q.target.startswith("/p/m/" + case)]
    assert leaked == [], "the upstream received a refused request: %r" % leaked


def test_valid_requests_still_pass(proxy):
    """Control: the same daemon forwards well-formed requests of the same shapes."""
    fd, up = proxy
    with Client(fd.port) as c:
        r = c.request("POST", "/p/m/control-cl", body=b"hello")
        assert r.status == 200
        c.send(build_request("POST", "/p/m/control-te", [("Transfer-Encoding", "chunked")])
               + b"5\r\nhello\r\n0\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /p/m/control-ows HTTP/1.1\r\nHost:fd.test\r\nX-A: \t b \t\r\n\r\n")
        assert c.read_response().status == 200
    got = {q.target: q for q in up.request_list()}
    assert got["/p/m/control-cl"].body == b"hello"
    assert got["/p/m/control-te"].body == b"hello"
    assert got["/p/m/control-ows"].headers.get("X-A") == "b"


def test_smuggled_second_request_is_not_forwarded(proxy):
    """CL+TE with a hidden request in the body: neither the outer nor the hidden one may pass."""
    fd, up = proxy
    hidden = b"GET /p/m/hidden-smuggled HTTP/1.1\r\nHost: fd.test\r\n\r\n"
    body = b"0\r\n\r\n" + hidden
    raw = (b"POST /p/m/outer-smuggle HTTP/1.1\r\nHost: fd.test\r\nContent-Length: %d\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" % len(body)) + body
    with Client(fd.port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 400
        c.assert_closed(3)
    time.sleep(0.1)
    targets = [q.target for q in up.request_list()]
    assert "/p/m/hidden-smuggled" not in targets and "/p/m/outer-smuggle" not in targets
