"""Routing: /{project}/{module}/... + environment -> manifest -> endpoint (round robin)."""
from fdtest import Client, make_config, manifest, request

ANY_ENVIRONMENT = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "default_environment": "production",
                                  "environments": ["*"]}]}


def test_routes_by_project_and_module(frontdoor, upstreams):
    a, b = upstreams("a"), upstreams("b")
    fd = frontdoor(make_config([manifest("shop", "cart", [a]), manifest("shop", "search", [b])]))
    r = request(fd.port, "GET", "/shop/cart/items/42")
    assert r.status == 200
    assert r.headers.get("X-Upstream") == "a"
    assert r.body == b"upstream=a method=GET target=/shop/cart/items/42\n"
    r = request(fd.port, "GET", "/shop/search?q=shoes")
    assert r.status == 200
    assert r.headers.get("X-Upstream") == "b"
    assert r.body == b"upstream=b method=GET target=/shop/search?q=shoes\n"
    assert [q.target for q in a.request_list()] == ["/shop/cart/items/42"]
    assert [q.target for q in b.request_list()] == ["/shop/search?q=shoes"]


def test_no_manifest_is_404_naming_the_key(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("shop", "cart", [upstream])], **ANY_ENVIRONMENT))
    r = request(fd.port, "GET", "/billing/invoices/7", headers=[("X-Environment", "staging")])
    assert r.status == 404
    text = r.text()
    for part in ("billing", "invoices", "staging"):
        assert part in text, "404 body should name %r: %r" % (part, text)
    r = request(fd.port, "GET", "/shop/wishlist/1")
    assert r.status == 404
    for part in ("shop", "wishlist", "production"):
        assert part in r.text(), "404 body should name %r: %r" % (part, r.text())
    assert upstream.request_list() == []


def test_environment_from_header_and_listener_default(frontdoor, upstreams):
    prod, stage = upstreams("prod"), upstreams("stage")
    fd = frontdoor(make_config([
        manifest("shop", "cart", [prod], environment="production"),
        manifest("shop", "cart", [stage], environment="staging"),
    ], **ANY_ENVIRONMENT))
    assert request(fd.port, "GET", "/shop/cart/x").headers.get("X-Upstream") == "prod"
    r = request(fd.port, "GET", "/shop/cart/x", headers=[("X-Environment", "staging")])
    assert (r.status, r.headers.get("X-Upstream")) == (200, "stage")
    r = request(fd.port, "GET", "/shop/cart/x", headers=[("X-Environment", "production")])
    assert (r.status, r.headers.get("X-Upstream")) == (200, "prod")
    r = request(fd.port, "GET", "/shop/cart/x", headers=[("X-Environment", "qa")])
    assert r.status == 404
    assert "qa" in r.text()


def test_listener_default_environment_and_custom_header(frontdoor, upstreams):
    prod, stage = upstreams("prod"), upstreams("stage")
    cfg = make_config([
        manifest("shop", "cart", [prod], environment="production"),
        manifest("shop", "cart", [stage], environment="staging"),
    ], routing={"environment_header": "X-Env"})
    cfg["listeners"] = [{"name": "main", "address": "127.0.0.1:0", "default_environment": "staging",
                         "environments": ["production"]},
                        {"name": "prodlistener", "address": "127.0.0.1:0", "default_environment": "production"}]
    fd = frontdoor(cfg, listeners=("main", "prodlistener"))
    assert request(fd.ports["main"], "GET", "/shop/cart/").headers.get("X-Upstream") == "stage"
    assert request(fd.ports["prodlistener"], "GET", "/shop/cart/").headers.get("X-Upstream") == "prod"
    # The configured header name decides; X-Environment is now an ordinary header.
    r = request(fd.ports["main"], "GET", "/shop/cart/", headers=[("X-Env", "production")])
    assert r.headers.get("X-Upstream") == "prod"
    r = request(fd.ports["main"], "GET", "/shop/cart/", headers=[("X-Environment", "production")])
    assert r.headers.get("X-Upstream") == "stage"


def test_wildcards_and_most_specific_match_wins(frontdoor, upstreams):
    exact, env_any, module_any, catch_all = (upstreams("exact"), upstreams("env_any"),
                                             upstreams("module_any"), upstreams("catch_all"))
    fd = frontdoor(make_config([
        manifest("*", "*", [catch_all], environment="*"),
        manifest("shop", "*", [module_any], environment="*"),
        manifest("shop", "cart", [env_any], environment="*"),
        manifest("shop", "cart", [exact], environment="staging"),
    ], **ANY_ENVIRONMENT))

    def who(path, env=None):
        r = request(fd.port, "GET", path, headers=[("X-Environment", env)] if env else [])
        assert r.status == 200, r
        return r.headers.get("X-Upstream")

    assert who("/shop/cart/1", "staging") == "exact"
    assert who("/shop/cart/1") == "env_any"
    assert who("/shop/cart/1", "qa") == "env_any"
    assert who("/shop/search/1", "staging") == "module_any"
    assert who("/blog/posts/1") == "catch_all"
    assert who("/blog/posts/1", "staging") == "catch_all"


def test_round_robin_across_endpoints(frontdoor, upstreams):
    a, b, c = upstreams("a"), upstreams("b"), upstreams("c")
    fd = frontdoor(make_config([manifest("shop", "cart", [a, b, c])]))
    with Client(fd.port) as client:
        seen = [client.request("GET", "/shop/cart/%d" % i).headers.get("X-Upstream") for i in range(9)]
    # Strict rotation (order of the first pick is free).
    assert sorted(seen[:3]) == ["a", "b", "c"], seen
    assert seen[3:6] == seen[:3] and seen[6:9] == seen[:3], seen
    assert [len(u.request_list()) for u in (a, b, c)] == [3, 3, 3]


def test_round_robin_over_separate_connections(frontdoor, upstreams):
    a, b = upstreams("a"), upstreams("b")
    fd = frontdoor(make_config([manifest("shop", "cart", [a, b])]))
    seen = [request(fd.port, "GET", "/shop/cart/%d" % i).headers.get("X-Upstream") for i in range(6)]
    assert seen.count("a") == 3 and seen.count("b") == 3, seen


def test_strip_path_prefix(frontdoor, upstreams):
    stripped, kept = upstreams("stripped"), upstreams("kept")
    fd = frontdoor(make_config([
        manifest("api", "v1", [stripped], strip_path_prefix=True),
        manifest("api", "v2", [kept], strip_path_prefix=False),
    ]))
    cases = [
        ("/api/v1/users/7?expand=1&x=%20y", "/users/7?expand=1&x=%20y"),
        ("/api/v1/users", "/users"),
        ("/api/v1/", "/"),
        ("/api/v1", "/"),
        ("/api/v1?q=1", "/?q=1"),
    ]
    for sent, expected in cases:
        r = request(fd.port, "GET", sent)
        assert r.status == 200, (sent, r)
        assert r.headers.get("X-Upstream") == "stripped"
        assert stripped.request_list()[-1].target == expected, sent
    r = request(fd.port, "GET", "/api/v2/users/7?expand=1")
    assert r.status == 200
    assert kept.request_list()[-1].target == "/api/v2/users/7?expand=1"


def test_query_string_and_encoding_untouched(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])]))
    target = "/p/m/a%2Fb/c%20d;v=1?x=1&x=2&y=%2F%3F&z=&=w#"[:-1]
    r = request(fd.port, "GET", target)
    assert r.status == 200
    assert upstream.request_list()[-1].target == target


def test_environment_header_is_ignored_unless_the_listener_allows_it(frontdoor, upstreams):
    """Security: a client must not reach another environment's manifests (and limits) by sending a
    header. By default a listener serves its default_environment only."""
    prod, stage, qa = upstreams("prod"), upstreams("stage"), upstreams("qa")
    manifests = [manifest("shop", "cart", [prod], environment="production"),
                 manifest("shop", "cart", [stage], environment="staging"),
                 manifest("shop", "cart", [qa], environment="qa")]
    fd = frontdoor(make_config(manifests))  # no `environments`: the header is ignored
    for env in ("staging", "qa", "production", "*", "../staging"):
        r = request(fd.port, "GET", "/shop/cart/x", headers=[("X-Environment", env)])
        assert (r.status, r.headers.get("X-Upstream")) == (200, "prod"), env
    cfg = make_config(manifests)
    cfg["listeners"][0]["environments"] = ["staging"]
    fd2 = frontdoor(cfg, name="allows_staging")

    def who(env):
        return request(fd2.port, "GET", "/shop/cart/x", headers=[("X-Environment", env)]).headers.get("X-Upstream")

    assert who("staging") == "stage"
    assert who("qa") == "prod", "an environment the listener does not list is not reachable"
    assert who("production") == "prod"


# Spellings an upstream that normalises its path (nginx, Tomcat, Express...) reads as
# /shop/checkout/pay: each must take checkout's manifest, and reach the upstream as it was routed.
SAME_PATH = ["/shop/x/../checkout/pay", "/shop/%63heckout/pay", "/shop/./checkout/pay", "/shop//checkout/pay",
             "//shop/checkout/pay", "/shop/checkout/./pay", "/shop/%2e/checkout/pay", "/shop/checkout/x/%2E%2E/pay"]


def test_a_path_routes_as_the_upstream_will_read_it(frontdoor, upstreams):
    checkout, rest = upstreams("checkout"), upstreams("rest")
    fd = frontdoor(make_config([manifest("shop", "checkout", [checkout]), manifest("shop", "*", [rest])]))
    for sent in SAME_PATH:
        r = request(fd.port, "GET", sent + "?q=/../x")
        assert (r.status, r.headers.get("X-Upstream")) == (200, "checkout"), (sent, r)
        assert checkout.request_list()[-1].target == "/shop/checkout/pay?q=/../x", sent
    # A path parameter does not rename the module (Tomcat strips it); it is sent on as it came.
    r = request(fd.port, "GET", "/shop/checkout;jsessionid=1/pay")
    assert (r.status, r.headers.get("X-Upstream")) == (200, "checkout"), r
    assert checkout.request_list()[-1].target == "/shop/checkout;jsessionid=1/pay"
    assert rest.request_list() == []


def test_a_path_no_upstream_reads_one_way_is_refused(frontdoor, upstreams):
    up = upstreams("any")
    fd = frontdoor(make_config([manifest("shop", "*", [up]), manifest("*", "*", [up])]))
    cases = {
        "/shop/../../etc/passwd": "above the root",
        "/%2e%2e/shop/x": "above the root",
        "/shop%2Fcheckout/pay": "encoded slash",
        "/shop/check%5cout/pay": "encoded slash",
        "/shop/checkout\\..\\admin": "backslash",
        "/shop/checkout/%zz": "percent-escape",
        "/shop/checkout/pay#/../../admin": "fragment",
    }
    for sent, why in cases.items():
        with Client(fd.port) as c:
            c.send(("GET %s HTTP/1.1\r\nHost: fd.test\r\n\r\n" % sent).encode())
            r = c.read_response()
            assert r.status == 400 and why in r.text(), (sent, r)
    assert up.request_list() == []


def test_strip_path_prefix_cannot_be_climbed_out_of(frontdoor, upstreams):
    api, shop = upstreams("api"), upstreams("shop")
    fd = frontdoor(make_config([manifest("api", "v1", [api], strip_path_prefix=True),
                                manifest("shop", "checkout", [shop])]))
    r = request(fd.port, "GET", "/api/v1/../../shop/checkout/pay")
    assert (r.status, r.headers.get("X-Upstream")) == (200, "shop"), r
    assert shop.request_list()[-1].target == "/shop/checkout/pay"
    assert api.request_list() == []
