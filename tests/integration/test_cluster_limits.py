"""Cluster limits (Envoy-style, per manifest, whole process): beyond max_requests in flight the
request fails fast with 503 + Retry-After instead of queueing on a slow upstream."""
import threading
import time

from fdtest import Action, make_config, manifest, request


def test_max_requests_fails_fast_and_frees_slots(frontdoor, upstreams):
    slow = upstreams("slow", Action(delay_ms=700))
    m = manifest("*", "*", [slow])
    m["max_requests"] = 2
    fd = frontdoor(make_config([m], server={"workers": 2}))
    results = []
    threads = [threading.Thread(target=lambda: results.append(request(fd.port, "GET", "/x").status)) for _ in range(2)]
    for t in threads:
        t.start()
    slow.wait_requests(2, timeout=3)
    start = time.monotonic()
    r = request(fd.port, "GET", "/x")
    assert r.status == 503 and r.headers.get("Retry-After") == "1", r
    assert time.monotonic() - start < 0.3
    for t in threads:
        t.join(5)
    assert results == [200, 200]
    assert request(fd.port, "GET", "/x").status == 200  # slots freed
