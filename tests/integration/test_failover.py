"""Priority failover: endpoints of priority 1 take traffic only when no priority-0 endpoint can."""
from fdtest import free_port, make_config, request


def test_secondary_only_when_primary_is_down(frontdoor, upstreams):
    primary, secondary = upstreams("primary"), upstreams("secondary")
    dead = "127.0.0.1:%d" % free_port()
    cfg = make_config([{"project": "*", "module": "*", "endpoints": [
        {"address": primary.address}, {"address": dead},
        {"address": secondary.address, "priority": 1}]}])
    fd = frontdoor(cfg)
    served = [request(fd.port, "GET", "/x").headers.get("X-Upstream") for _ in range(10)]
    assert served == ["primary"] * 10, served  # the dead primary is retried on the live one
    primary.stop()
    served = [request(fd.port, "GET", "/x") for _ in range(12)]
    assert all(r.status == 200 for r in served), served
    assert served[-1].headers.get("X-Upstream") == "secondary"
