"""Resilience defaults: with no configuration at all, a dead endpoint costs no failed request, comes
back into rotation after its breaker's recovery time, and a pool with every breaker open fails fast
with 503 and Retry-After."""
import time

from fdtest import ScriptedUpstream, free_port, request


def proxy_argv(*endpoints):
    return ["proxy", "--listen", "127.0.0.1:0", "--to", ",".join(endpoints), "--workers", "1",
            "--ports-file", "{ports}"]


def test_dead_endpoint_costs_no_request_and_comes_back(frontdoor, upstreams):
    b = upstreams("b")
    dead_port = free_port()
    fd = frontdoor(argv=proxy_argv("127.0.0.1:%d" % dead_port, b.address))
    for i in range(30):
        r = request(fd.port, "GET", "/any/%d" % i)
        assert r.status == 200, r
        assert r.headers.get("X-Upstream") == "b"
    # A connect failure means the request never left: even a POST goes to the other endpoint.
    r = request(fd.port, "POST", "/orders", body=b"{}")
    assert r.status == 200 and r.headers.get("X-Upstream") == "b"
    assert len(b.request_list()) == 31

    a = ScriptedUpstream("a", port=dead_port)
    try:
        # The breaker (5 consecutive failures, open 5 s) lets a probe through, then closes.
        deadline = time.monotonic() + 12
        seen = set()
        while time.monotonic() < deadline and "a" not in seen:
            r = request(fd.port, "GET", "/back")
            assert r.status == 200, r
            seen.add(r.headers.get("X-Upstream"))
            time.sleep(0.2)
        assert "a" in seen, "endpoint a never came back into rotation"
        answered = [request(fd.port, "GET", "/rr").headers.get("X-Upstream") for _ in range(10)]
        assert answered.count("a") >= 4, answered
    finally:
        a.stop()


def test_all_endpoints_down_fails_fast_with_retry_after(frontdoor):
    dead = ["127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()]
    fd = frontdoor(argv=proxy_argv(*dead))
    statuses = []
    for _ in range(12):
        r = request(fd.port, "GET", "/x")
        statuses.append(r.status)
        assert r.status in (502, 503), r
        assert r.headers.get("X-Request-Id")
    assert statuses[0] == 502
    assert statuses[-1] == 503, statuses
    start = time.monotonic()
    r = request(fd.port, "GET", "/x")
    elapsed = time.monotonic() - start
    assert r.status == 503
    assert elapsed < 0.5
    retry_after = int(r.headers.get("Retry-After"))
    assert 1 <= retry_after <= 5
    assert "circuit is open" in r.text()
