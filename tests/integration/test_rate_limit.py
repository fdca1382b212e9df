"""Local rate limits: shared by every worker (one client spread over workers by SO_REUSEPORT still
gets its limit once), 429 + Retry-After beyond it, RateLimit-Policy / RateLimit fields on responses."""
import time

from fdtest import make_config, manifest, request


def limited_config(upstream, **limit):
    rate = {"name": "per-client", "key": "client_ip", "requests_per_second": 1, "burst": 5}
    rate.update(limit)
    cfg = make_config([manifest("*", "*", [upstream])], server={"workers": 2})
    cfg["rate_limits"] = [rate]
    return cfg


def test_limit_holds_across_workers_with_headers(frontdoor, upstream):
    fd = frontdoor(limited_config(upstream))
    statuses = []
    first = None
    for _ in range(12):  # a new connection each time: the kernel spreads them over both workers
        r = request(fd.port, "GET", "/a/b")
        statuses.append(r.status)
        if first is None:
            first = r
    assert statuses.count(200) in (5, 6), statuses  # the burst, plus at most one refilled token
    assert statuses[:5] == [200] * 5
    assert first.headers.get("RateLimit-Policy") == '"per-client";q=5;w=5'
    assert first.headers.get("RateLimit").startswith('"per-client";r=4;t=')
    r = request(fd.port, "GET", "/a/b")
    assert r.status == 429
    assert 1 <= int(r.headers.get("Retry-After")) <= 2
    assert r.headers.get("RateLimit").startswith('"per-client";r=0;')
    assert "rate limit exceeded" in r.text()
    # Refused requests never reach the upstream.
    assert len(upstream.request_list()) == statuses.count(200)
    time.sleep(1.1)
    assert request(fd.port, "GET", "/a/b").status == 200


def test_header_key_limits_each_api_key(frontdoor, upstream):
    fd = frontdoor(limited_config(upstream, name="api", key="header:X-Api-Key", burst=2))
    k1 = [request(fd.port, "GET", "/x", headers=[("X-Api-Key", "k1")]).status for _ in range(3)]
    k2 = [request(fd.port, "GET", "/x", headers=[("X-Api-Key", "k2")]).status for _ in range(2)]
    anonymous = [request(fd.port, "GET", "/x").status for _ in range(4)]
    assert k1 == [200, 200, 429]
    assert k2 == [200, 200]
    assert anonymous == [200] * 4


def test_a_repeated_key_header_is_refused_not_counted_under_a_fresh_value(frontdoor, upstream):
    """An upstream that reads the last X-Api-Key would serve `realkey` while a limit counting the first
    value counted `junkN`: a new bucket per request. A repeated key header is a 400, never forwarded."""
    fd = frontdoor(limited_config(upstream, name="api", key="header:X-Api-Key", burst=2))
    assert [request(fd.port, "GET", "/x", headers=[("X-Api-Key", "realkey")]).status for _ in range(3)] == [200, 200, 429]
    for i in range(4):
        r = request(fd.port, "GET", "/x/%d" % i, headers=[("X-Api-Key", "junk%d" % i), ("X-Api-Key", "realkey")])
        assert r.status == 400 and "repeated" in r.text(), r
        r = request(fd.port, "GET", "/x/%d" % i, headers=[("X-Api-Key", ""), ("X-Api-Key", "realkey")])
        assert r.status == 400, r
    assert len(upstream.request_list()) == 2
    assert fd.metrics()["errors"].get("repeated_key_header") == 8


def test_manifest_limit_applies_to_its_manifest_only(frontdoor, upstream):
    cart = manifest("shop", "cart", [upstream])
    cart["rate_limits"] = [{"name": "cart", "key": "client_ip", "requests_per_second": 1, "burst": 2}]
    cfg = make_config([cart, manifest("shop", "search", [upstream])], server={"workers": 2})
    fd = frontdoor(cfg)
    cart_statuses = [request(fd.port, "GET", "/shop/cart/x").status for _ in range(4)]
    search_statuses = [request(fd.port, "GET", "/shop/search/x").status for _ in range(4)]
    assert cart_statuses == [200, 200, 429, 429]
    assert search_statuses == [200] * 4
    r = request(fd.port, "GET", "/shop/cart/x")
    assert r.headers.get("RateLimit-Policy") == '"cart";q=2;w=2'


def test_leaky_bucket_spaces_requests_at_the_rate(frontdoor, upstream):
    import threading
    fd = frontdoor(limited_config(upstream, name="smooth", requests_per_second=10, burst=5,
                                  algorithm="leaky_bucket"))
    results = []
    lock = threading.Lock()
    start = time.monotonic()

    def one():
        r = request(fd.port, "GET", "/a/b")
        with lock:
            results.append((r.status, time.monotonic() - start))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 5 + [429] * 3, results
    done = sorted(t for s, t in results if s == 200)
    # Five admitted at once leave one interval (100 ms) apart: the last about 400 ms after the first.
    assert done[-1] - done[0] >= 0.3, done
    refused = [t for s, t in results if s == 429]
    assert max(refused) < 0.3, results  # refusals are immediate, not queued


def test_a_request_refused_by_one_limit_takes_nothing_from_the_others(frontdoor, upstream):
    """As nginx's limit_req: the top-level limit let the refused cart requests through, but they
    were refused by cart's own limit, so they must not have spent the client's top-level quota."""
    cart = manifest("shop", "cart", [upstream])
    cart["rate_limits"] = [{"name": "cart", "key": "client_ip", "requests_per_second": 1, "burst": 1}]
    cfg = make_config([cart, manifest("shop", "search", [upstream])], server={"workers": 1})
    cfg["rate_limits"] = [{"name": "per-client", "key": "client_ip", "requests_per_second": 1, "burst": 5},
                          {"name": "tight-second", "key": "path", "requests_per_second": 1, "burst": 2}]
    fd = frontdoor(cfg)
    assert [request(fd.port, "GET", "/shop/cart/x").status for _ in range(5)] == [200] + [429] * 4
    # Without refunds per-client would have spent all 5 on cart; it spent 1: search still gets in.
    r = request(fd.port, "GET", "/shop/search/x")
    assert r.status == 200 and r.headers.get("RateLimit") is not None, r
    # Refused by the second top-level limit (path): the first (per-client) gives its share back.
    assert [request(fd.port, "GET", "/shop/search/y").status for _ in range(3)] == [200, 429, 429]
    assert request(fd.port, "GET", "/other/z").status in (200, 404)  # per-client still has room


def test_a_leaky_bucket_refusal_keeps_no_place_in_the_queue(frontdoor, upstream):
    """Refused because its turn would come after request_total, a request must not keep its place:
    else a client at the rate never gets through again."""
    import threading
    cfg = limited_config(upstream, name="lb", requests_per_second=2, burst=10, algorithm="leaky_bucket")
    cfg["timeouts"] = {"request_total": "1s"}
    fd = frontdoor(cfg)
    results = []
    threads = [threading.Thread(target=lambda: results.append(request(fd.port, "GET", "/a/b", timeout=5).status))
               for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert 429 in results and 200 in results, results
    time.sleep(1.5)  # what was admitted has drained
    paced = []
    for _ in range(3):
        paced.append(request(fd.port, "GET", "/a/b", timeout=5).status)
        time.sleep(0.6)  # under the rate
    assert paced == [200] * 3, paced
