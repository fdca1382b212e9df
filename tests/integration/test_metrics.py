"""The counters every stage keeps, summed over the workers: SIGUSR1 logs them as one JSON line
(the admin listener's /metrics will serve the same numbers)."""
from fdtest import Action, make_config, manifest, request


def test_sigusr1_logs_every_stage_counters(frontdoor, upstreams):
    good, bad = upstreams("good"), upstreams("bad", Action(status=503))
    cart = manifest("shop", "cart", [good, bad])
    cart["rate_limits"] = [{"name": "cart", "requests_per_second": 1, "burst": 3}]
    cfg = make_config([cart], server={"workers": 2})
    cfg["rate_limits"] = [{"name": "everyone", "requests_per_second": 1000, "burst": 1000}]
    cfg["resilience"] = {"circuit_breaker": {"consecutive_failures": 1, "failures": ["5xx"]}}
    fd = frontdoor(cfg)
    statuses = [request(fd.port, "GET", "/shop/cart/%d" % i).status for i in range(5)]
    assert request(fd.port, "GET", "/nowhere/at-all").status == 404
    m = fd.metrics()
    assert m["workers"] == 2 and m["workers_missing"] == 0
    assert m["requests"] == 6
    assert m["responses"]["4xx"] == statuses.count(429) + 1
    assert m["errors"]["no_manifest"] == 1
    assert m["errors"]["rate_limited"] == statuses.count(429) == 2
    limits = {(r["limit"], r["manifest"]): r for r in m["rate_limits"]}
    assert limits[("everyone", "")]["allowed"] == 6
    assert limits[("cart", "shop/cart/*")] == {"limit": "cart", "manifest": "shop/cart/*", "allowed": 3,
                                               "refused": 2}
    endpoints = {e["endpoint"]: e for e in m["endpoints"]}
    bad_name = "127.0.0.1:%d" % bad.port
    assert endpoints[bad_name]["breaker_opened"] >= 1, m
    assert m["manifests"][0]["manifest"] == "shop/cart/*"
    assert m["redis"]["connected"] == 0 and m["global_rate_limit"]["fetches"] == 0


def test_a_breaker_opening_on_one_worker_opens_on_all(frontdoor, upstreams):
    from fdtest import Client, free_port
    live = upstreams("live")
    dead = "127.0.0.1:%d" % free_port()
    cfg = make_config([manifest("*", "*", [dead, live])], server={"workers": 2})
    fd = frontdoor(cfg)
    with Client(fd.port) as c:  # one connection: one worker sees every failure
        for i in range(12):
            assert c.request("GET", "/x/%d" % i).status == 200
    m = fd.metrics()
    endpoints = {e["endpoint"]: e for e in m["endpoints"]}
    assert endpoints[dead]["breakers_open"] == 2, m["endpoints"]  # the other worker's too
    assert endpoints[live.address]["breakers_open"] == 0


def test_an_ejection_on_one_worker_ejects_on_all(frontdoor, upstreams):
    from fdtest import Client
    bad, good = upstreams("bad", Action(status=503)), upstreams("good")
    fd = frontdoor(make_config([manifest("*", "*", [bad, good])], server={"workers": 2}))
    with Client(fd.port) as c:  # one connection: one worker sees every answer
        statuses = [c.request("GET", "/x/%d" % i).status for i in range(12)]
    assert statuses.count(503) == 5, statuses  # ejected after 5 in a row; the rest went to good
    m = fd.metrics()
    assert m["manifests"][0]["ejections"] == 2, m["manifests"]  # this worker's, and the other's
    # A new connection (either worker) avoids bad at once.
    assert all(request(fd.port, "GET", "/y/%d" % i).status == 200 for i in range(6))
