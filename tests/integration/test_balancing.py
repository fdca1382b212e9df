"""Balancing policies over real sockets: consistent hashing keeps a key on one backend, sticky
cookies pin a client, weighted rotation follows the weights."""
import collections

from fdtest import make_config, manifest, request


def three(upstreams):
    return [upstreams(n) for n in ("a", "b", "c")]


def test_consistent_hash_keeps_each_key_on_one_backend(frontdoor, upstreams):
    ups = three(upstreams)
    fd = frontdoor(make_config([manifest("*", "*", ups, balancing="consistent_hash", hash_key="header:X-User")]))
    owner = {}
    for _ in range(3):
        for user in range(15):
            r = request(fd.port, "GET", "/cart", headers=[("X-User", "u%d" % user)])
            assert r.status == 200
            owner.setdefault(user, r.headers.get("X-Upstream"))
            assert owner[user] == r.headers.get("X-Upstream"), "key u%d moved" % user
    assert len(set(owner.values())) >= 2, owner


def test_sticky_cookie_pins_a_client(frontdoor, upstreams):
    ups = three(upstreams)
    fd = frontdoor(make_config([manifest("*", "*", ups, balancing="sticky", sticky_cookie="fd_pin")]))
    first = request(fd.port, "GET", "/")
    cookie = first.headers.get("Set-Cookie")
    assert cookie and cookie.startswith("fd_pin=") and "Path=/" in cookie, first
    pinned = first.headers.get("X-Upstream")
    value = cookie.split(";")[0]
    for _ in range(8):
        r = request(fd.port, "GET", "/", headers=[("Cookie", "x=1; " + value)])
        assert r.headers.get("X-Upstream") == pinned
        assert r.headers.get("Set-Cookie") is None
    # Without the cookie, clients spread.
    seen = {request(fd.port, "GET", "/").headers.get("X-Upstream") for _ in range(6)}
    assert len(seen) == 3


def test_weighted_rotation(frontdoor, upstreams):
    a, b = upstreams("a"), upstreams("b")
    m = manifest("*", "*", [a, b], balancing="weighted")
    m["endpoints"][0]["weight"] = 3
    fd = frontdoor(make_config([m]))
    counts = collections.Counter(request(fd.port, "GET", "/").headers.get("X-Upstream") for _ in range(8))
    assert counts == {"a": 6, "b": 2}
