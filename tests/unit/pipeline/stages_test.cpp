#include "frontdoor/pipeline/stages.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "frontdoor/config/loader.hpp"

namespace frontdoor::pipeline {
namespace {

using namespace std::chrono_literals;

constexpr const char* kConfig = R"(listeners:
  - address: 127.0.0.1:0
manifests:
  - project: shop
    module: cart
    endpoints: ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]
  - project: shop
    module: cart
    environment: staging
    endpoints: ["127.0.0.1:9101"]
)";

const std::vector<std::string> kAnyEnvironment{"*"};  // a listener with environments: ["*"]

struct Harness {
  std::shared_ptr<const snapshot::Snapshot> snapshot;
  UpstreamHealth health;
  resilience::LocalLimitTables limiter{1024};
  LoadMonitor load;
  upstream::ClusterLoad clusters{8};
  RequestPipeline pipeline{RateLimitStage{&limiter}, ManifestStage{}, ManifestRateLimitStage{&limiter}, LoadShedStage{load}, BreakerStage{health, &clusters},
                           PickStage{health}};
  std::string text;
  http::RequestHead head;
  std::vector<http::Header> headers;
  RequestContext ctx;
  Clock::time_point now = Clock::time_point{} + 1000s;

  explicit Harness(const std::string& config_text = kConfig) {
    auto loaded = config::load_config_string(config_text, "inline.yaml");
    EXPECT_TRUE(loaded.config);
    snapshot::EndpointRegistry registry;
    std::vector<config::ConfigError> errors;
    snapshot = snapshot::build_snapshot(*loaded.config, registry, errors);
    EXPECT_TRUE(snapshot);
    health.install(*snapshot);
  }

  Verdict request(const std::string& target, const std::string& extra_headers = "") {
    text = "GET " + target + " HTTP/1.1\r\nHost: h\r\n" + extra_headers + "\r\n";
    head.headers = &headers;
    http::HeadScanner scanner;
    Error error = Error::ok;
    EXPECT_EQ(http::parse_request_head(text, snapshot->request_limits, scanner, head, error),
              http::ParseStatus::complete);
    ctx.reset();
    ctx.snapshot = snapshot.get();
    ctx.request = &head;
    ctx.default_environment = "production";
    ctx.allowed_environments = kAnyEnvironment;
    ctx.client_ip = "10.1.2.3";
    ctx.started = ctx.now = now;
    return pipeline.on_request(ctx);
  }

  // Finishes the request with an outcome, as the session does.
  void complete(Error outcome, unsigned status) {
    ctx.outcome = outcome;
    ctx.status = status;
    ctx.now = now;
    pipeline.on_complete(ctx);
  }

  std::uint16_t picked_port() const { return ctx.endpoint->address.port(); }
};

TEST(ManifestStage, ResolvesByPathAndEnvironment) {
  Harness h;
  ASSERT_EQ(h.request("/shop/cart/items"), Verdict::Continue);
  EXPECT_EQ(h.ctx.manifest->environment, "*");
  ASSERT_EQ(h.request("/shop/cart/items", "X-Environment: staging\r\n"), Verdict::Continue);
  EXPECT_EQ(h.picked_port(), 9101);
  EXPECT_EQ(h.request("/shop/search"), Verdict::Reply);
  EXPECT_EQ(h.ctx.reply, Error::no_manifest);
  EXPECT_EQ(h.ctx.module, "search");
}

TEST(PickStage, RoundRobin) {
  Harness h;
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    ports.push_back(h.picked_port());
    h.complete(Error::ok, 200);
  }
  EXPECT_EQ(ports, (std::vector<std::uint16_t>{9001, 9002, 9003, 9001, 9002, 9003}));
}

TEST(PickStage, OpenBreakerLeavesRotationAndProbesBackAfterRecovery) {
  Harness h;
  // 9001 refuses five times in a row: its breaker opens.
  for (int i = 0; i < 5; ++i) {
    while (true) {
      ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
      if (h.picked_port() == 9001) break;
      h.complete(Error::ok, 200);
    }
    h.complete(Error::upstream_connect_failed, 502);
  }
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    EXPECT_NE(h.picked_port(), 9001);
    h.complete(Error::ok, 200);
  }
  h.now += 5s;  // open_duration: one probe is admitted
  int probes = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    if (h.picked_port() == 9001) {
      ++probes;
      h.complete(Error::ok, 200);  // the probe succeeds: closed again
    } else {
      h.complete(Error::ok, 200);
    }
  }
  EXPECT_EQ(probes, 1);
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    ports.push_back(h.picked_port());
    h.complete(Error::ok, 200);
  }
  EXPECT_NE(std::find(ports.begin(), ports.end(), 9001), ports.end());
}

TEST(PickStage, EveryBreakerOpenRepliesWithRetryAfter) {
  Harness h;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
    h.complete(Error::upstream_connect_timeout, 504);
  }
  h.now += 2s;
  ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Reply);
  EXPECT_EQ(h.ctx.reply, Error::no_healthy_upstream);
  EXPECT_EQ(h.ctx.retry_after_seconds, 3u);
  EXPECT_EQ(error_info(h.ctx.reply).status, 503u);
}

// One endpoint (staging), so every request goes to it.
std::string single_endpoint(const std::string& resilience_yaml) {
  return std::string(kConfig) + "resilience:\n" + resilience_yaml;
}

TEST(PickStage, WhenAllOpenTryAnywayStillPicks) {
  Harness h(single_endpoint("  circuit_breaker: {consecutive_failures: 2, when_all_open: try_anyway}\n"));
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
    h.complete(Error::upstream_connect_failed, 502);
  }
  ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
  EXPECT_EQ(h.picked_port(), 9101);
}

TEST(BreakerStage, FiveHundredsCountOnlyWhenConfigured) {
  Harness counted(single_endpoint("  circuit_breaker: {consecutive_failures: 2, failures: [5xx]}\n"));
  Harness ignored(single_endpoint("  circuit_breaker: {consecutive_failures: 2}\n"));
  for (Harness* h : {&counted, &ignored})
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(h->request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
      h->complete(Error::ok, 503);
    }
  EXPECT_EQ(counted.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Reply);
  EXPECT_EQ(ignored.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
  // connect errors are not listed in `counted`: they no longer open its breaker.
  Harness only_5xx(single_endpoint("  circuit_breaker: {consecutive_failures: 1, failures: [5xx]}\n"));
  ASSERT_EQ(only_5xx.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
  only_5xx.complete(Error::upstream_connect_failed, 502);
  EXPECT_EQ(only_5xx.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
}

TEST(BreakerStage, ARequestNeverSentSaysNothingOfTheEndpoint) {
  Harness h(single_endpoint("  circuit_breaker: {consecutive_failures: 2, open_duration: 1s}\n"));
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
    h.complete(Error::upstream_connect_failed, 502);
  }
  h.now += 1s;  // half-open: one probe
  ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
  h.complete(Error::upstream_overflow, 503);  // queued for a connection, never sent: not a success
  ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);  // the probe slot is back
  h.complete(Error::upstream_connect_failed, 502);  // the real probe fails: open again
  EXPECT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Reply);
}

TEST(BreakerStage, FailureRateOverAWindowWithAMinimum) {
  Harness h(single_endpoint(
      "  circuit_breaker: {consecutive_failures: 0, failure_rate_percent: 50, window: 10s, min_requests: 10}\n"));
  // Alternating success and failure: 50% once there are 10 results.
  for (int i = 0; i < 9; ++i) {
    ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue) << i;
    h.complete(i % 2 ? Error::ok : Error::upstream_timeout, i % 2 ? 200 : 504);
  }
  ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
  h.complete(Error::ok, 200);
  ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
  h.complete(Error::upstream_timeout, 504);  // 6 of 11
  EXPECT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Reply);
  EXPECT_EQ(h.ctx.reply, Error::no_healthy_upstream);
}

TEST(PickStage, TriedEndpointsAreSkippedForTheRetry) {
  Harness h;
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  const auto first = h.ctx.endpoint_index;
  h.ctx.tried.add(first);
  h.ctx.attempt = 1;
  ASSERT_EQ(h.pipeline.stage<PickStage>().on_request(h.ctx), Verdict::Continue);
  EXPECT_NE(h.ctx.endpoint_index, first);
  for (std::uint32_t k = 0; k < 3; ++k) h.ctx.tried.add(k);
  EXPECT_EQ(h.pipeline.stage<PickStage>().on_request(h.ctx), Verdict::Reply);
}

// A manifest of 70 endpoints (a headless Service's pods): the ones past the 64th are endpoints too.
std::string seventy_endpoints(const std::string& extra) {
  std::string endpoints;
  for (int i = 0; i < 70; ++i) endpoints += std::string(i ? ", " : "") + "\"127.0.0.1:" + std::to_string(9200 + i) + "\"";
  return "listeners:\n  - address: 127.0.0.1:0\nmanifests:\n  - project: shop\n    module: cart\n"
         "    balancing: consistent_hash\n    hash_key: header:X-Key\n    endpoints: [" + endpoints + "]\n" + extra;
}

TEST(PickStage, AnEndpointPastTheSixtyFourthIsNotPickedAgainOnceTried) {
  Harness h(seventy_endpoints(""));
  // A key whose ring point falls on an endpoint past the 64th.
  std::string key;
  for (int i = 0; i < 5000 && key.empty(); ++i) {
    ASSERT_EQ(h.request("/shop/cart", "X-Key: k" + std::to_string(i) + "\r\n"), Verdict::Continue);
    if (h.ctx.endpoint_index >= 64) key = "k" + std::to_string(i);
  }
  ASSERT_FALSE(key.empty());
  ASSERT_EQ(h.request("/shop/cart", "X-Key: " + key + "\r\n"), Verdict::Continue);
  const auto first = h.ctx.endpoint_index;
  for (std::uint32_t attempt = 1; attempt < 4; ++attempt) {
    h.ctx.tried.add(h.ctx.endpoint_index);
    h.ctx.attempt = attempt;
    ASSERT_EQ(h.pipeline.stage<PickStage>().on_request(h.ctx), Verdict::Continue);
    EXPECT_NE(h.ctx.endpoint_index, first) << "attempt " << attempt;
    EXPECT_EQ(h.ctx.tried.size(), attempt);
  }
}

TEST(PickStage, AHalfOpenEndpointPastTheSixtyFourthWithoutAProbeSlotSendsTheKeyOn) {
  Harness h(seventy_endpoints("resilience:\n  circuit_breaker: {consecutive_failures: 1, open_duration: 1s}\n"));
  std::string key;
  for (int i = 0; i < 5000 && key.empty(); ++i) {
    ASSERT_EQ(h.request("/shop/cart", "X-Key: k" + std::to_string(i) + "\r\n"), Verdict::Continue);
    const bool far = h.ctx.endpoint_index >= 64;
    h.complete(Error::ok, 200);
    if (far) key = "k" + std::to_string(i);
  }
  ASSERT_FALSE(key.empty());
  ASSERT_EQ(h.request("/shop/cart", "X-Key: " + key + "\r\n"), Verdict::Continue);
  const auto far = h.ctx.endpoint_index;
  h.complete(Error::upstream_connect_failed, 502);  // its breaker opens
  h.now += 1s;                                      // half-open: one probe...
  ASSERT_EQ(h.request("/shop/cart", "X-Key: " + key + "\r\n"), Verdict::Continue);
  ASSERT_EQ(h.ctx.endpoint_index, far);  // ...taken by this request, which is still in flight
  ASSERT_EQ(h.request("/shop/cart", "X-Key: " + key + "\r\n"), Verdict::Continue);  // not a 503
  EXPECT_NE(h.ctx.endpoint_index, far);
}

TEST(PickStage, WhenAllEjectedFailRefusesSuspectEndpoints) {
  Harness h(single_endpoint(
      "  outlier_detection: {consecutive_failures: 2, max_ejection_percent: 100, when_all_ejected: fail}\n"));
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
    h.complete(Error::ok, 503);
  }
  EXPECT_EQ(h.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Reply);
  Harness lenient(single_endpoint("  outlier_detection: {consecutive_failures: 2, max_ejection_percent: 100}\n"));
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(lenient.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
    lenient.complete(Error::ok, 503);
  }
  EXPECT_EQ(lenient.request("/shop/cart", "X-Environment: staging\r\n"), Verdict::Continue);
}

TEST(PickStage, FailingAnswersEjectButNeverTheWholePool) {
  Harness h;
  // 9002 answers 503 five times: ejected (at most half the pool may be).
  for (int i = 0; i < 5; ++i) {
    while (true) {
      ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
      if (h.picked_port() == 9002) break;
      h.complete(Error::ok, 200);
    }
    h.complete(Error::ok, 503);
  }
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    EXPECT_NE(h.picked_port(), 9002);
    h.complete(Error::ok, 200);
  }
  // A client hanging up says nothing about the endpoint.
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  h.complete(Error::client_closed, 0);
}

TEST(RateLimitStage, BurstThenRefillWithHeaders) {
  Harness h(std::string(kConfig) + R"(rate_limits:
  - name: per-client
    key: client_ip
    requests_per_second: 1
    burst: 3
  - name: per-key
    key: header:X-Api-Key
    requests_per_second: 100
    burst: 100
)");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue) << i;
    EXPECT_EQ(h.ctx.extra_response_headers(),
              "RateLimit-Policy: \"per-client\";q=3;w=3, \"per-key\";q=100;w=1\r\nRateLimit: \"per-client\";r=" +
                  std::to_string(2 - i) + ";t=" + std::to_string(i + 1) + "\r\n");
  }
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Reply);
  EXPECT_EQ(h.ctx.reply, Error::rate_limited);
  EXPECT_EQ(h.ctx.retry_after_seconds, 1u);
  EXPECT_EQ(error_info(h.ctx.reply).status, 429u);
  h.now += 1s;
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Reply);
}

// RateLimit-Policy tells the rate, not only the burst: 50/s with a burst of 10 is 50 per second
// (it was sent as q=10;w=1), and 3/s with a burst of 10 is 12 per 4 s (the burst refills in 4 s).
TEST(RateLimitStage, PolicyStatesTheRateWhenItExceedsTheBurst) {
  Harness h(std::string(kConfig) + R"(rate_limits:
  - {name: fast, key: client_ip, requests_per_second: 50, burst: 10}
  - {name: slow, key: client_ip, requests_per_second: 3, burst: 10}
)");
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.ctx.extra_response_headers(),
            "RateLimit-Policy: \"fast\";q=50;w=1, \"slow\";q=12;w=4\r\nRateLimit: \"fast\";r=9;t=1\r\n");
}

TEST(RateLimitStage, HeaderKeyAndSeparateClients) {
  Harness h(std::string(kConfig) + R"(rate_limits:
  - name: api
    key: header:X-Api-Key
    requests_per_second: 1
    burst: 1
)");
  EXPECT_EQ(h.request("/shop/cart", "X-Api-Key: k1\r\n"), Verdict::Continue);
  EXPECT_EQ(h.request("/shop/cart", "X-Api-Key: k1\r\n"), Verdict::Reply);
  EXPECT_EQ(h.request("/shop/cart", "X-Api-Key: k2\r\n"), Verdict::Continue);
  // Without the header this limit does not apply, and no RateLimit fields are sent.
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.ctx.extra_response_headers(), "");
}

TEST(RateLimitStage, HeaderKeyOnAHeaderTheParserClassifies) {
  // X-Forwarded-For (like Host) is classified by the parser: a limit keyed on it must still see it.
  Harness h(std::string(kConfig) + R"(rate_limits:
  - name: by_forwarded_for
    key: header:X-Forwarded-For
    requests_per_second: 1
    burst: 1
)");
  EXPECT_EQ(h.request("/shop/cart", "X-Forwarded-For: 192.0.2.1\r\n"), Verdict::Continue);
  EXPECT_EQ(h.request("/shop/cart", "X-Forwarded-For: 192.0.2.1\r\n"), Verdict::Reply);
  EXPECT_EQ(h.request("/shop/cart", "X-Forwarded-For: 192.0.2.2\r\n"), Verdict::Continue);
}

TEST(RateLimitStage, Ipv6ClientsAreCountedPerPrefix) {
  Harness h(std::string(kConfig) + R"(rate_limits:
  - name: per_client
    requests_per_second: 1
    burst: 1
)");
  const auto from = [&](const char* address) {
    h.ctx.client_address = boost::asio::ip::make_address(address);
    h.ctx.client_ip = address;
  };
  // The stage reads the address the session set: request() resets the context but not these.
  from("2001:db8:1:2::1");
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue);
  from("2001:db8:1:2:ffff::9");  // same /64: the same client
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Reply);
  from("2001:db8:1:3::1");  // another /64
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue);
  Harness per_address(std::string(kConfig) + R"(rate_limits:
  - name: per_address
    requests_per_second: 1
    burst: 1
    ipv6_prefix: 128
)");
  per_address.ctx.client_address = boost::asio::ip::make_address("2001:db8::1");
  EXPECT_EQ(per_address.request("/shop/cart"), Verdict::Continue);
  per_address.ctx.client_address = boost::asio::ip::make_address("2001:db8::2");
  EXPECT_EQ(per_address.request("/shop/cart"), Verdict::Continue);
}

TEST(RateLimitStage, Ipv4ClientsInIpv6AddressesAreCountedPerAddress) {
  // Behind NAT64 (64:ff9b::/96) every IPv4 user shares the /64: each must be its own client.
  Harness h(std::string(kConfig) + R"(rate_limits:
  - name: per_client
    requests_per_second: 1
    burst: 1
)");
  for (const char* address : {"64:ff9b::102:304", "64:ff9b::506:708", "::9.9.9.9", "::10.10.10.10"}) {
    h.ctx.client_address = boost::asio::ip::make_address(address);
    EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue) << address;
    EXPECT_EQ(h.request("/shop/cart"), Verdict::Reply) << address;
  }
}

TEST(RateLimitStage, CostTakesSeveralUnits) {
  Harness h(std::string(kConfig) + R"(rate_limits:
  - name: heavy
    requests_per_second: 1
    burst: 10
    cost: 4
)");
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Reply);  // 8 of 10 taken: 2 left, 4 needed
  EXPECT_EQ(h.ctx.retry_after_seconds, 2u);
}

TEST(RateLimitStage, LegacyHeadersNameTheTightestLimitOnce) {
  Harness h(R"(listeners:
  - address: 127.0.0.1:0
rate_limit_headers: legacy
rate_limits:
  - {name: everyone, requests_per_second: 100, burst: 100}
manifests:
  - project: shop
    module: cart
    endpoints: ["127.0.0.1:9001"]
    rate_limits:
      - {name: cart, requests_per_second: 1, burst: 2}
  - project: shop
    module: search
    endpoints: ["127.0.0.1:9002"]
)");
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.ctx.extra_response_headers(), "X-RateLimit-Limit: 2\r\nX-RateLimit-Remaining: 1\r\nX-RateLimit-Reset: 1\r\n");
  ASSERT_EQ(h.request("/shop/search"), Verdict::Continue);
  EXPECT_EQ(h.ctx.extra_response_headers(),
            "X-RateLimit-Limit: 100\r\nX-RateLimit-Remaining: 98\r\nX-RateLimit-Reset: 1\r\n");
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Reply);
  EXPECT_EQ(h.ctx.extra_response_headers(), "X-RateLimit-Limit: 2\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 2\r\n");
}

TEST(RateLimitStage, SlidingWindowCountsPerWindow) {
  Harness h(std::string(kConfig) + R"(rate_limits:
  - name: per-minute
    algorithm: sliding_window
    requests_per_window: 3
    window: 1m
)");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue) << i;
  EXPECT_NE(h.ctx.extra_response_headers().find("RateLimit-Policy: \"per-minute\";q=3;w=60\r\n"),
            std::string_view::npos)
      << h.ctx.extra_response_headers();
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Reply);
  EXPECT_EQ(h.ctx.reply, Error::rate_limited);
  h.now += 20s;  // t = 1020 s: the next window starts, where the last one's 3 still count in full
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Reply);
  h.now += 30s;  // half of them faded: 1.5 + 1 <= 3
  EXPECT_EQ(h.request("/shop/cart"), Verdict::Continue);
}

// Without a reachable Redis a global limit follows its on_redis_failure policy.
std::string global_limit(const std::string& policy) {
  return std::string(kConfig) + R"(redis:
  address: 127.0.0.1:1
rate_limits:
  - name: shared
    scope: global
    requests_per_second: 1
    burst: 2
    on_redis_failure: )" + policy + "\n";
}

TEST(RateLimitStage, GlobalLimitWithoutRedisFollowsItsPolicy) {
  Harness local(global_limit("local"));
  EXPECT_EQ(local.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(local.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(local.request("/shop/cart"), Verdict::Reply);
  EXPECT_EQ(local.ctx.reply, Error::rate_limited);

  Harness allow(global_limit("allow"));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(allow.request("/shop/cart"), Verdict::Continue);

  Harness deny(global_limit("deny"));
  EXPECT_EQ(deny.request("/shop/cart"), Verdict::Reply);
  EXPECT_EQ(deny.ctx.reply, Error::rate_limit_unavailable);
  EXPECT_EQ(deny.ctx.retry_after_seconds, 1u);
  EXPECT_EQ(error_info(deny.ctx.reply).status, 503u);
}

TEST(ManifestRateLimitStage, LimitsOnlyItsManifestAfterTheTopLevelOnes) {
  Harness h(R"(listeners:
  - address: 127.0.0.1:0
rate_limits:
  - {name: everyone, requests_per_second: 100, burst: 100}
manifests:
  - project: shop
    module: cart
    endpoints: ["127.0.0.1:9001"]
    rate_limits:
      - {name: cart, requests_per_second: 1, burst: 2}
  - project: shop
    module: search
    endpoints: ["127.0.0.1:9002"]
)");
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.ctx.extra_response_headers(),
            "RateLimit-Policy: \"everyone\";q=100;w=1\r\nRateLimit: \"everyone\";r=99;t=1\r\n"
            "RateLimit-Policy: \"cart\";q=2;w=2\r\nRateLimit: \"cart\";r=1;t=1\r\n");
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Reply);
  EXPECT_EQ(h.ctx.reply, Error::rate_limited);
  // Another manifest (same client) is not limited by it.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.request("/shop/search"), Verdict::Continue) << i;
}

TEST(UpstreamHealth, ManifestOverridesItsResilienceSettings) {
  Harness h(R"(listeners:
  - address: 127.0.0.1:0
resilience:
  retries: {max_attempts: 3, on_statuses: [503]}
  circuit_breaker: {consecutive_failures: 5}
manifests:
  - project: shop
    module: cart
    endpoints: ["127.0.0.1:9001"]
    resilience:
      retries: {max_attempts: 1}
      circuit_breaker: {consecutive_failures: 2}
  - project: shop
    module: search
    endpoints: ["127.0.0.1:9002"]
)");
  const auto* cart = h.snapshot->manifests.find("shop", "cart", "production");
  const auto* search = h.snapshot->manifests.find("shop", "search", "production");
  ASSERT_TRUE(cart && search);
  EXPECT_EQ(h.health.policy(*cart).max_attempts, 1u);
  EXPECT_TRUE(h.health.policy(*cart).retries_status(503));  // not named: inherited
  EXPECT_EQ(h.health.policy(*search).max_attempts, 3u);
  // The cart endpoint's breaker opens after 2 failures, the search one's after 5.
  auto& cart_breaker = h.health.breaker(cart->endpoints[0].id);
  auto& search_breaker = h.health.breaker(search->endpoints[0].id);
  for (int i = 0; i < 2; ++i) {
    cart_breaker.on_failure(h.now);
    search_breaker.on_failure(h.now);
  }
  EXPECT_FALSE(cart_breaker.allow(h.now));
  EXPECT_TRUE(search_breaker.allow(h.now));
}

std::string manifest_with(const std::string& balancing_lines) {
  return std::string(R"(listeners:
  - address: 127.0.0.1:0
manifests:
  - project: shop
    module: cart
    endpoints:
      - {address: "127.0.0.1:9001", weight: 3}
      - {address: "127.0.0.1:9002", weight: 1}
      - {address: "127.0.0.1:9003", weight: 1}
)") + balancing_lines;
}

TEST(PickStage, SmoothWeighted) {
  Harness h(manifest_with("    balancing: weighted\n"));
  std::map<std::uint16_t, int> count;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    ++count[h.picked_port()];
    h.complete(Error::ok, 200);
  }
  EXPECT_EQ(count[9001], 6);
  EXPECT_EQ(count[9002], 2);
  EXPECT_EQ(count[9003], 2);
}

TEST(PickStage, LeastConnectionsAvoidsBusyEndpoints) {
  Harness h(manifest_with("    balancing: least_connections\n"));
  const auto& eps = h.snapshot->manifests.manifests()[0].endpoints;
  h.health.load(eps[0].id).inflight = 30;  // weight 3: load 31/3
  h.health.load(eps[1].id).inflight = 4;   // 5/1
  h.health.load(eps[2].id).inflight = 0;   // 1/1
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.picked_port(), 9003);
  h.health.load(eps[2].id).inflight = 20;
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  EXPECT_EQ(h.picked_port(), 9002);
}

TEST(PickStage, ConsistentHashKeepsAKeyOnOneEndpoint) {
  Harness h(manifest_with("    balancing: consistent_hash\n    hash_key: header:X-User\n"));
  std::map<std::string, std::uint16_t> owner;
  for (int round = 0; round < 3; ++round) {
    for (int user = 0; user < 20; ++user) {
      const std::string id = "user-" + std::to_string(user);
      ASSERT_EQ(h.request("/shop/cart", "X-User: " + id + "\r\n"), Verdict::Continue);
      if (round == 0) owner[id] = h.picked_port();
      else EXPECT_EQ(owner[id], h.picked_port()) << id;
      h.complete(Error::ok, 200);
    }
  }
  std::set<std::uint16_t> used;
  for (const auto& [id, port] : owner) used.insert(port);
  EXPECT_GT(used.size(), 1u);  // the keys spread
}

TEST(PickStage, ConsistentHashOnAClassifiedHeader) {
  Harness h(manifest_with("    balancing: consistent_hash\n    hash_key: header:X-Forwarded-For\n"));
  std::set<std::uint16_t> used;
  for (int client = 0; client < 20; ++client) {
    const std::string xff = "X-Forwarded-For: 198.51.100." + std::to_string(client) + "\r\n";
    ASSERT_EQ(h.request("/shop/cart", xff), Verdict::Continue);
    const auto first = h.picked_port();
    h.complete(Error::ok, 200);
    ASSERT_EQ(h.request("/shop/cart", xff), Verdict::Continue);
    EXPECT_EQ(h.picked_port(), first) << xff;
    h.complete(Error::ok, 200);
    used.insert(first);
  }
  EXPECT_GT(used.size(), 1u) << "the header's values spread: it was read, not taken as absent";
}

TEST(PickStage, StickyCookiePinsAndIsSetOnce) {
  Harness h(manifest_with("    balancing: sticky\n    sticky_cookie: pin\n"));
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  const auto first = h.picked_port();
  const std::string headers(h.ctx.extra_response_headers());
  ASSERT_EQ(headers.rfind("Set-Cookie: pin=", 0), 0u) << headers;
  const std::string token = headers.substr(16, 16);
  h.complete(Error::ok, 200);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(h.request("/shop/cart", "Cookie: a=1; pin=" + token + "\r\n"), Verdict::Continue);
    EXPECT_EQ(h.picked_port(), first);
    EXPECT_EQ(h.ctx.extra_response_headers(), "");  // already pinned: no new cookie
    h.complete(Error::ok, 200);
  }
}

TEST(PickStage, StickyRetryReplacesTheCookieInsteadOfAddingOne) {
  Harness h(manifest_with("    balancing: sticky\n    sticky_cookie: pin\n"));
  auto cookies = [&] {
    const std::string headers(h.ctx.extra_response_headers());
    std::size_t n = 0;
    for (auto at = headers.find("Set-Cookie:"); at != std::string::npos; at = headers.find("Set-Cookie:", at + 1)) ++n;
    return n;
  };
  ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
  const std::string before(h.ctx.extra_response_headers());
  ASSERT_EQ(cookies(), 1u);
  // The first endpoint failed: the retry picks another, whose cookie is the one the client gets.
  h.ctx.tried.add(h.ctx.endpoint_index);
  h.ctx.attempt = 1;
  ASSERT_EQ(h.pipeline.stage<PickStage>().on_request(h.ctx), Verdict::Continue);
  EXPECT_EQ(cookies(), 1u) << h.ctx.extra_response_headers();
  EXPECT_NE(std::string(h.ctx.extra_response_headers()), before);
  h.complete(Error::ok, 200);

  // A client pinned to one endpoint, retried onto another: one cookie, the new endpoint's.
  const std::string token = before.substr(16, 16);
  ASSERT_EQ(h.request("/shop/cart", "Cookie: pin=" + token + "\r\n"), Verdict::Continue);
  ASSERT_EQ(cookies(), 0u);
  h.ctx.tried.add(h.ctx.endpoint_index);
  h.ctx.attempt = 1;
  ASSERT_EQ(h.pipeline.stage<PickStage>().on_request(h.ctx), Verdict::Continue);
  EXPECT_EQ(cookies(), 1u);
  h.ctx.tried.add(h.ctx.endpoint_index);
  h.ctx.attempt = 2;
  ASSERT_EQ(h.pipeline.stage<PickStage>().on_request(h.ctx), Verdict::Continue);
  EXPECT_EQ(cookies(), 1u) << h.ctx.extra_response_headers();
}

TEST(LoadShedStage, ShedsLowThenNormalNeverHigh) {
  Harness h(R"(listeners:
  - address: 127.0.0.1:0
load_shedding:
  max_inflight_requests: 10
manifests:
  - {project: batch, module: "*", priority: low, endpoints: ["127.0.0.1:9001"]}
  - {project: shop, module: "*", endpoints: ["127.0.0.1:9002"]}
  - {project: pay, module: "*", priority: high, endpoints: ["127.0.0.1:9003"]}
)");
  auto verdicts = [&] {
    std::string out;
    for (const char* p : {"/batch/x", "/shop/x", "/pay/x"}) out += h.request(p) == Verdict::Continue ? 'y' : 'n';
    return out;
  };
  h.load.inflight = 10;
  EXPECT_EQ(verdicts(), "yyy");
  h.load.inflight = 11;
  EXPECT_EQ(verdicts(), "nyy");
  EXPECT_EQ(h.ctx.retry_after_seconds, 0u);
  h.request("/batch/x");
  EXPECT_EQ(h.ctx.reply, Error::overloaded);
  EXPECT_EQ(h.ctx.retry_after_seconds, 1u);
  h.load.inflight = 16;
  EXPECT_EQ(verdicts(), "nny");
  h.load.inflight = 3;
  h.load.tick_level = 1;  // event-loop lag or memory over its threshold
  EXPECT_EQ(verdicts(), "nyy");
  h.load.tick_level = 0;
  EXPECT_EQ(verdicts(), "yyy");
  EXPECT_EQ(h.load.shed, 5u);
}

TEST(PickStage, PriorityFailoverToTheNextLevel) {
  Harness h(R"(listeners:
  - address: 127.0.0.1:0
manifests:
  - project: shop
    module: cart
    endpoints:
      - {address: "127.0.0.1:9001"}
      - {address: "127.0.0.1:9002"}
      - {address: "127.0.0.1:9101", priority: 1}
)");
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    EXPECT_LT(h.picked_port(), 9100);  // the primary level only
    h.complete(Error::ok, 200);
  }
  // Both primaries open their breakers: the secondary region takes over.
  for (int failures = 0; failures < 10; ++failures) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    ASSERT_LT(h.picked_port(), 9100);
    h.complete(Error::upstream_connect_failed, 502);
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(h.request("/shop/cart"), Verdict::Continue);
    EXPECT_EQ(h.picked_port(), 9101);
    h.complete(Error::ok, 200);
  }
}

TEST(BreakerStage, ClusterMaxRequestsForTheWholeProcess) {
  Harness h(R"(listeners:
  - address: 127.0.0.1:0
manifests:
  - {project: shop, module: "*", max_requests: 2, endpoints: ["127.0.0.1:9001"]}
)");
  ASSERT_EQ(h.request("/shop/a"), Verdict::Continue);
  ASSERT_EQ(h.request("/shop/b"), Verdict::Continue);  // two in flight (not completed)
  EXPECT_EQ(h.clusters.requests(0), 2u);
  ASSERT_EQ(h.request("/shop/c"), Verdict::Reply);
  EXPECT_EQ(h.ctx.reply, Error::overloaded);
  EXPECT_EQ(h.ctx.retry_after_seconds, 1u);
  h.complete(Error::overloaded, 503);  // the refused one holds no slot
  EXPECT_EQ(h.clusters.requests(0), 2u);
  RequestContext done = h.ctx;
  done.holds_request_slot = true;
  done.manifest = &h.snapshot->manifests.manifests()[0];
  done.endpoint = nullptr;
  h.pipeline.on_complete(done);  // one of the two finishes
  EXPECT_EQ(h.clusters.requests(0), 1u);
  EXPECT_EQ(h.request("/shop/d"), Verdict::Continue);
}

}  // namespace
}  // namespace frontdoor::pipeline
