"""When a request may be sent twice: a pooled connection that the upstream closes after reading the
request (its keep-alive timeout racing ours) is retried once on a new connection only for requests
that are idempotent (method, or an Idempotency-Key) or that never left; a POST with
Content-Length: 0 is not replayed (the upstream may have acted on it)."""
import pytest

from fdtest import Action, Client, make_config, manifest


def _close_first_request_on(conn_id):
    """Reads the request, answers nothing and closes — on the warmed pooled connection only."""
    return lambda req: Action(mode="close") if req.conn_id == conn_id else Action(body=b"fresh")


def _warm_pool(fd, upstream, c):
    r = c.request("GET", "/p/m/warm")
    assert r.status == 200
    (warm,) = upstream.wait_requests(1)
    upstream.reset_records()
    return warm.conn_id


@pytest.mark.parametrize("method,headers", [("GET", ()), ("DELETE", ()),
                                            ("POST", (("Idempotency-Key", "k-1"),))])
def test_idempotent_request_on_a_stale_pooled_connection_is_retried_once(frontdoor, upstream, method, headers):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    with Client(fd.port) as c:
        warm = _warm_pool(fd, upstream, c)
        upstream.set_script(_close_first_request_on(warm))
        r = c.request(method, "/p/m/again", headers=headers, body=b"" if method == "POST" else None)
        assert (r.status, r.body) == (200, b"fresh")
    seen = upstream.wait_requests(2)
    assert [q.method for q in seen] == [method, method]
    assert seen[0].conn_id == warm and seen[1].conn_id != warm
    assert fd.metrics()["upstream_stale_retries"] == 1


def test_bodyless_post_on_a_stale_pooled_connection_is_not_replayed(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    with Client(fd.port) as c:
        warm = _warm_pool(fd, upstream, c)
        upstream.set_script(_close_first_request_on(warm))
        r = c.request("POST", "/p/m/order", headers=(("Content-Length", "0"),), body=b"")
        assert r.status == 502
        # The connection to the client survives the local reply.
        r2 = c.request("GET", "/p/m/after")
        assert (r2.status, r2.body) == (200, b"fresh")
    seen = upstream.wait_requests(2)
    assert [q.method for q in seen] == ["POST", "GET"], "the POST reached the upstream once"
    assert fd.metrics()["upstream_stale_retries"] == 0


def test_bodyless_post_is_not_replayed_even_with_retry_on_reset(frontdoor, upstreams):
    a, b = upstreams("a", Action(mode="close")), upstreams("b", Action(body=b"b"))
    cfg = make_config([manifest("p", "m", [a, b])], server={"workers": 1})  # one round robin
    cfg["resilience"] = {"retries": {"max_attempts": 2, "on_reset": True}}
    fd = frontdoor(cfg)
    statuses = []
    for i in range(4):
        with Client(fd.port) as c:
            statuses.append(c.request("POST", "/p/m/%d" % i, headers=(("Content-Length", "0"),), body=b"").status)
    # Every POST that met the closing upstream failed there; none was sent on to b.
    assert sorted(statuses) == [200, 200, 502, 502], statuses
    assert len(a.request_list()) == 2 and len(b.request_list()) == 2
