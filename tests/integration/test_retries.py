"""Retries beyond connect failures: an idempotent request without a body whose upstream resets, or
answers a status listed in resilience.retries.on_statuses, is sent to another endpoint; a POST is not."""
from fdtest import Action, make_config, manifest, request


def config_with(ups, **retries):
    cfg = make_config([manifest("*", "*", ups)])
    cfg["resilience"] = {"retries": dict({"max_attempts": 3, "backoff_base": "10ms", "backoff_max": "50ms"}, **retries)}
    return cfg


def test_retriable_status_goes_to_another_endpoint(frontdoor, upstreams):
    bad, good = upstreams("bad", Action(status=503)), upstreams("good")
    fd = frontdoor(config_with([bad, good], on_statuses=[503]))
    # Not idempotent: the 503 is the answer (round robin alternates).
    statuses = [request(fd.port, "POST", "/orders", body=b"x").status for _ in range(2)]
    assert sorted(statuses) == [200, 503]
    # An Idempotency-Key makes a POST safe to retry (here without a body); GET is idempotent.
    r = request(fd.port, "POST", "/orders", headers=[("Idempotency-Key", "k-1")], body=b"")
    assert r.status == 200 and r.headers.get("X-Upstream") == "good", r
    for i in range(6):
        r = request(fd.port, "GET", "/item/%d" % i)
        assert r.status == 200 and r.headers.get("X-Upstream") == "good", r
    assert len(bad.request_list()) >= 2  # it was tried, and answered 503 each time


def test_reset_is_retried_only_when_asked(frontdoor, upstreams):
    flaky, good = upstreams("flaky", Action(mode="reset")), upstreams("good")
    fd = frontdoor(config_with([flaky, good], on_reset=True))
    for i in range(6):
        r = request(fd.port, "GET", "/x/%d" % i)
        assert r.status == 200 and r.headers.get("X-Upstream") == "good", r


def test_without_retry_settings_the_status_passes_through(frontdoor, upstreams):
    bad = upstreams("bad", Action(status=503))
    fd = frontdoor(config_with([bad]))
    r = request(fd.port, "GET", "/")
    assert r.status == 503 and r.headers.get("X-Upstream") == "bad"


def test_per_try_timeout_moves_a_slow_attempt_elsewhere(frontdoor, upstreams):
    import time
    slow, good = upstreams("slow", Action(mode="never")), upstreams("good")
    fd = frontdoor(config_with([slow, good], per_try_timeout="300ms"))
    for i in range(4):
        t0 = time.monotonic()
        r = request(fd.port, "GET", "/x/%d" % i)
        elapsed = time.monotonic() - t0
        assert r.status == 200 and r.headers.get("X-Upstream") == "good", r
        assert elapsed < 1.5, elapsed  # 300 ms (+ the 100 ms tick) on the slow one at most, not 60 s
    assert len(slow.request_list()) >= 1
    # A POST is not retried: its slow attempt ends in 504 after the per-try timeout.
    statuses = set()
    for _ in range(2):
        statuses.add(request(fd.port, "POST", "/y", body=b"x").status)
    assert statuses == {200, 504}
