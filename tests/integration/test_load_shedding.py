"""Load shedding: past max_inflight_requests, low-priority manifests get 503 + Retry-After at once
while high-priority traffic goes on; it recovers when the load falls."""
import threading

from fdtest import Action, make_config, manifest, request


def test_low_priority_shed_first_and_recovery(frontdoor, upstreams):
    slow = upstreams("slow", Action(delay_ms=800))
    fast = upstreams("fast")
    cfg = make_config([manifest("batch", "*", [fast], priority="low"),
                       manifest("pay", "*", [fast], priority="high"),
                       manifest("slow", "*", [slow])])
    cfg["load_shedding"] = {"max_inflight_requests": 2}
    fd = frontdoor(cfg)
    results = []
    threads = [threading.Thread(target=lambda: results.append(request(fd.port, "GET", "/slow/x").status))
               for _ in range(3)]
    for t in threads:
        t.start()
    slow.wait_requests(3, timeout=3)
    shed = request(fd.port, "GET", "/batch/job")
    assert shed.status == 503 and shed.headers.get("Retry-After") == "1", shed
    assert "overloaded" in shed.text()
    assert request(fd.port, "GET", "/pay/charge").status == 200
    for t in threads:
        t.join(5)
    assert results == [200, 200, 200]
    assert request(fd.port, "GET", "/batch/job").status == 200  # recovered
