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


def test_max_connections_queues_up_to_max_pending(frontdoor, upstreams):
    slow = upstreams("slow", Action(delay_ms=500))
    m = manifest("*", "*", [slow])
    m["max_connections"] = 1
    m["max_pending"] = 1
    fd = frontdoor(make_config([m], server={"workers": 1}))
    results = {}

    def one(name):
        t0 = time.monotonic()
        r = request(fd.port, "GET", "/" + name)
        results[name] = (r.status, time.monotonic() - t0, r)

    first = threading.Thread(target=one, args=("first",))
    first.start()
    slow.wait_requests(1, timeout=3)
    second = threading.Thread(target=one, args=("second",))
    second.start()
    time.sleep(0.15)  # the second is waiting for the only connection
    queued = fd.metrics()["manifests"][0]
    assert (queued["connections"], queued["pending"]) == (1, 1), queued  # fd_cluster_pending
    one("third")      # nothing left: no connection, no room to wait
    first.join(5)
    second.join(5)
    assert results["third"][0] == 503, results
    assert results["third"][1] < 0.3
    assert results["third"][2].headers.get("Retry-After") == "1"
    assert "upstream connection limit reached" in results["third"][2].text()
    assert results["first"][0] == 200 and results["second"][0] == 200, results
    # The second waited for the first's connection and then reused it: one connection in all.
    assert results["second"][1] >= 0.7, results
    conns = {r.conn_id for r in slow.request_list()}
    assert len(conns) == 1, conns


def test_max_connections_waiting_is_bounded_by_the_connect_timeout(frontdoor, upstreams):
    stuck = upstreams("stuck", Action(mode="never"))
    m = manifest("*", "*", [stuck])
    m["max_connections"] = 1
    m["max_pending"] = 10
    cfg = make_config([m], server={"workers": 1})
    cfg["timeouts"] = {"upstream_connect": "400ms", "upstream_response": "5s"}
    fd = frontdoor(cfg)
    t = threading.Thread(target=lambda: request(fd.port, "GET", "/hold", timeout=8))
    t.start()
    stuck.wait_requests(1, timeout=3)
    t0 = time.monotonic()
    r = request(fd.port, "GET", "/waits")
    assert r.status == 503, r
    assert 0.3 <= time.monotonic() - t0 < 1.5
    t.join(10)


def test_an_idle_connection_gives_its_slot_to_a_request_for_another_endpoint(frontdoor, upstreams):
    a, b = upstreams("a"), upstreams("b")
    m = manifest("*", "*", [a, b])
    m["max_connections"] = 1
    m["max_pending"] = 1
    fd = frontdoor(make_config([m], server={"workers": 1}))
    seen = []
    for i in range(4):  # round robin: a, b, a, b — each needs the one slot the other's idle connection holds
        t0 = time.monotonic()
        r = request(fd.port, "GET", "/x/%d" % i)
        assert r.status == 200, r
        assert time.monotonic() - t0 < 0.5  # no waiting for the idle connection's timeout
        seen.append(r.headers.get("X-Upstream"))
    assert sorted(set(seen)) == ["a", "b"]


def test_a_manifest_added_by_a_reload_gets_its_limits(frontdoor, upstreams, tmp_path):
    # Cluster limits are counted in a table sized at start: a manifest a reload adds must still find
    # a slot (it went unlimited before).
    slow = upstreams("slow", Action(delay_ms=700))
    cfg = make_config([manifest("first", "*", [slow])])
    fd = frontdoor(cfg)
    added = manifest("added", "*", [slow])
    added["max_requests"] = 1
    cfg["manifests"].append(added)
    fd.reload(cfg)
    first = threading.Thread(target=lambda: request(fd.port, "GET", "/added/1"))
    first.start()
    slow.wait_requests(1, timeout=3)
    r = request(fd.port, "GET", "/added/2")
    first.join(5)
    assert r.status == 503, r
    assert "unlimited" not in fd.stderr()


def test_a_reload_beyond_the_room_sized_at_start_says_so(frontdoor, upstream):
    cfg = make_config([manifest("p0", "*", [upstream])])
    fd = frontdoor(cfg)
    cfg["manifests"] = [manifest("p%d" % i, "*", [upstream]) for i in range(1 + 1024 + 1)]
    fd.reload(cfg)
    assert "1026 manifests, but cluster limits (max_requests, max_connections, max_pending) were sized at start " \
           "for 1025: the last ones go unlimited until a restart" in fd.stderr(), fd.stderr()[-2000:]
    assert request(fd.port, "GET", "/p1025/x").status == 200  # installed all the same
