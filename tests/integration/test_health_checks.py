"""Active health checks: an endpoint failing its health check leaves the rotation (though it still
answers requests), and comes back once it passes again."""
import time

from fdtest import Action, make_config, manifest, request


def test_failing_health_check_takes_endpoint_out_and_back(frontdoor, upstreams):
    state = {"healthy": False}
    a = upstreams("a", lambda req: Action(status=200 if state["healthy"] else 503)
                  if req.target == "/healthz" else Action())
    b = upstreams("b")
    cfg = make_config([manifest("*", "*", [a, b])])
    cfg["resilience"] = {"health_check": {"path": "/healthz", "interval": "100ms", "timeout": "500ms",
                                          "unhealthy_threshold": 2, "healthy_threshold": 1}}
    fd = frontdoor(cfg)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len([r for r in a.request_list() if r.target == "/healthz"]) < 3:
        time.sleep(0.05)
    checks = [r for r in a.request_list() if r.target == "/healthz"]
    assert len(checks) >= 3
    assert checks[0].headers.get("User-Agent") == "frontdoor-health-check"
    served = [request(fd.port, "GET", "/page").headers.get("X-Upstream") for _ in range(6)]
    assert served == ["b"] * 6, served

    state["healthy"] = True
    deadline = time.monotonic() + 5
    seen = set()
    while time.monotonic() < deadline and "a" not in seen:
        seen.add(request(fd.port, "GET", "/page").headers.get("X-Upstream"))
        time.sleep(0.05)
    assert "a" in seen


def test_health_check_set_by_one_manifest_only(frontdoor, upstreams):
    sick = lambda req: Action(status=503) if req.target.startswith("/health") else Action()  # noqa: E731
    a, b = upstreams("a", sick), upstreams("b")
    c, d = upstreams("c", sick), upstreams("d")
    checked = manifest("shop", "cart", [a, b])
    checked["resilience"] = {"health_check": {"path": "/health/cart", "interval": "100ms",
                                              "unhealthy_threshold": 1}}
    unchecked = manifest("shop", "search", [c, d])  # no health check (the top level has none)
    fd = frontdoor(make_config([checked, unchecked]))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not [r for r in a.request_list() if r.target == "/health/cart"]:
        time.sleep(0.05)
    time.sleep(0.3)
    served = [request(fd.port, "GET", "/shop/cart/x").headers.get("X-Upstream") for _ in range(6)]
    assert served == ["b"] * 6, served
    assert not [r for r in c.request_list() if r.target.startswith("/health")]  # never probed
    served = {request(fd.port, "GET", "/shop/search/x").headers.get("X-Upstream") for _ in range(6)}
    assert served == {"c", "d"}


def _probes(upstream, path):
    return [r for r in upstream.request_list() if r.target == path]


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_health_checks_follow_a_reload(frontdoor, upstreams):
    # Added by a reload: probed, and out of the rotation when it fails. Removed by the next one:
    # no longer probed, and its verdict lifted (it serves again, passive checks only).
    sick = lambda req: Action(status=503) if req.target == "/hz" else Action()  # noqa: E731
    a, b = upstreams("a", sick), upstreams("b")
    cfg = make_config([manifest("shop", "*", [a, b])])
    fd = frontdoor(cfg)
    checked = manifest("shop", "*", [a, b])
    checked["resilience"] = {"health_check": {"path": "/hz", "interval": "100ms", "unhealthy_threshold": 1}}
    cfg["manifests"] = [checked]
    fd.reload(cfg)
    assert _wait(lambda: len(_probes(a, "/hz")) >= 2), "an endpoint a reload asked to check is never probed"
    served = [request(fd.port, "GET", "/shop/x").headers.get("X-Upstream") for _ in range(6)]
    assert served == ["b"] * 6, served

    cfg["manifests"] = [manifest("shop", "*", [a, b])]
    fd.reload(cfg)
    time.sleep(0.3)
    probed = len(_probes(a, "/hz"))
    served = {request(fd.port, "GET", "/shop/x").headers.get("X-Upstream") for _ in range(8)}
    assert served == {"a", "b"}, served
    time.sleep(0.3)
    assert len(_probes(a, "/hz")) == probed, "still probed after the reload removed the check"


def test_a_malformed_status_line_fails_the_health_check(frontdoor, upstreams):
    # "0F0" was read digit by digit with unsigned wrap-around (220): healthy.
    bad = b"HTTP/1.1 0F0 garbage\r\nContent-Length: 0\r\n\r\n"
    a = upstreams("a", lambda req: Action(mode="raw_with_fin", body=bad) if req.target == "/healthz" else Action())
    b = upstreams("b")
    cfg = make_config([manifest("*", "*", [a, b])])
    cfg["resilience"] = {"health_check": {"path": "/healthz", "interval": "100ms", "timeout": "500ms",
                                          "unhealthy_threshold": 1, "healthy_threshold": 1}}
    fd = frontdoor(cfg)
    assert _wait(lambda: len(_probes(a, "/healthz")) >= 2)
    served = [request(fd.port, "GET", "/page").headers.get("X-Upstream") for _ in range(6)]
    assert served == ["b"] * 6, served
