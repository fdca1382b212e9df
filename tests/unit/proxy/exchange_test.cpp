// UpstreamExchange without sockets: the paths that end before any connection is made — a
// manifest's max_connections full, waiting under max_pending, deadlines while queued, abort — driven
// through a fake worker (ExchangeHost) and a fake client side (ClientSide).
#include "frontdoor/proxy/exchange.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "frontdoor/config/loader.hpp"

namespace frontdoor::proxy {
namespace {

using namespace std::chrono_literals;

constexpr const char* kConfig = R"(listeners:
  - address: 127.0.0.1:0
manifests:
  - project: shop
    module: cart
    endpoints: ["127.0.0.1:9001"]
    max_connections: 1
    max_pending: 1
  - project: shop
    module: list
    endpoints: ["127.0.0.1:9002"]
    max_connections: 1
)";

struct FakeHost final : ExchangeHost {
  boost::asio::io_context io_context;
  std::shared_ptr<const snapshot::Snapshot> snapshot;
  pipeline::UpstreamHealth health_state;
  pipeline::PickStage pick{health_state};
  upstream::ClusterLoad cluster_load{8};
  stats::WorkerCounters worker_counters;
  std::vector<std::unique_ptr<upstream::UpstreamPool>> pools;
  std::vector<Waiter> queues = std::vector<Waiter>(8);
  char scratch_space[16384];
  pipeline::Clock::time_point clock = pipeline::Clock::time_point{} + 1000s;
  int peers_asked = 0;

  boost::asio::io_context& io() noexcept override { return io_context; }
  pipeline::Clock::time_point now() const noexcept override { return clock; }
  pipeline::Clock::time_point coarse_now() const noexcept override { return clock; }
  pipeline::UpstreamHealth& health() noexcept override { return health_state; }
  pipeline::PickStage& picker() noexcept override { return pick; }
  upstream::ClusterLoad* clusters() noexcept override { return &cluster_load; }
  stats::WorkerCounters& counters() noexcept override { return worker_counters; }
  upstream::UpstreamPool& pool(manifest::EndpointId id) override {
    while (pools.size() <= id) pools.push_back(std::make_unique<upstream::UpstreamPool>(io_context, pools.size()));
    return *pools[id];
  }
  bool draining() const noexcept override { return false; }
  char* scratch() noexcept override { return scratch_space; }
  std::size_t scratch_size() const noexcept override { return sizeof scratch_space; }
  Waiter& connection_queue(std::uint32_t manifest) override { return queues.at(manifest); }
  void wake_connection_queue(std::uint32_t) override {}
  bool close_idle_counted(std::uint32_t) override { return false; }
  void ask_peer_to_free_slot(std::uint32_t) override { ++peers_asked; }
};

struct FakeClient final : ClientSide {
  std::string data;
  std::optional<ExchangeEnd> ended;
  std::string detail;
  int ends = 0;
  pipeline::Clock::duration last_timeout{};
  int writes = 0;

  std::string_view client_data() const noexcept override { return data; }
  void consume_client_data(std::size_t n) noexcept override { data.erase(0, n); }
  void read_client_body() override {}
  ClientWrite write_client(std::string_view, std::string_view) override {
    ++writes;
    return ClientWrite::done;
  }
  void set_deadline(pipeline::Clock::duration timeout) noexcept override { last_timeout = timeout; }
  void cap_deadline(pipeline::Clock::time_point) noexcept override {}
  void exchange_done(const ExchangeEnd& end) override {
    ended = end;
    detail = std::string(end.detail);
    ++ends;
  }
  void exchange_released() noexcept override {}
  void tunnel_started() noexcept override {}
  void request_sent() noexcept override {}
  bool finish_client_side() noexcept override { return false; }
};

struct Harness {
  FakeHost host;
  FakeClient client;
  UpstreamExchange exchange{host, client};
  std::string text;
  http::RequestHead head;
  std::vector<http::Header> headers;
  http::BodyCursor body;
  pipeline::RequestContext ctx;

  Harness() {
    auto loaded = config::load_config_string(kConfig, "inline.yaml");
    EXPECT_TRUE(loaded.config);
    snapshot::EndpointRegistry registry;
    std::vector<config::ConfigError> errors;
    host.snapshot = snapshot::build_snapshot(*loaded.config, registry, errors);
    EXPECT_TRUE(host.snapshot);
    host.health_state.install(*host.snapshot);
  }

  // Parses the request and picks its endpoint the way the pipeline would, then starts the exchange.
  void start(const std::string& request_text, std::size_t manifest_index) {
    text = request_text;
    head.headers = &headers;
    http::HeadScanner scanner;
    Error error = Error::ok;
    ASSERT_EQ(http::parse_request_head(text, host.snapshot->request_limits, scanner, head, error),
              http::ParseStatus::complete);
    client.data = text.substr(head.head_bytes);
    body.start(head.framing, head.content_length, 0, 16384);
    ctx.reset();
    ctx.snapshot = host.snapshot.get();
    ctx.request = &head;
    ctx.now = host.clock;
    ctx.manifest = &host.snapshot->manifests.manifests().at(manifest_index);
    ASSERT_EQ(host.pick.on_request(ctx), pipeline::Verdict::Continue);
    exchange.start(ctx, head, body, false);
  }
  // Takes the manifest's one connection slot, as a connection on another worker would.
  void fill_connections(std::size_t manifest_index) {
    ASSERT_TRUE(host.cluster_load.try_add_connection(manifest_index, 1));
  }
};

TEST(UpstreamExchange, FullClusterWithoutPendingRoomAnswers503AtOnce) {
  Harness h;
  h.fill_connections(1);  // shop/list: max_connections 1, max_pending 0
  h.start("GET /shop/list/x HTTP/1.1\r\nHost: h\r\n\r\n", 1);
  ASSERT_EQ(h.client.ends, 1);
  EXPECT_EQ(h.client.ended->kind, ExchangeEnd::Kind::failed);
  EXPECT_EQ(h.client.ended->error, Error::upstream_overflow);
  EXPECT_FALSE(h.client.ended->close_client);  // no body left unread: the connection stays
  EXPECT_EQ(h.ctx.retry_after_seconds, 1u);
  EXPECT_EQ(h.ctx.outcome, Error::upstream_overflow);
  EXPECT_FALSE(h.exchange.active());
  EXPECT_EQ(h.host.pool(h.ctx.endpoint->id).open_count(), 0u);  // no connection was made
  EXPECT_EQ(h.host.worker_counters[stats::Counter::upstream_connects], 0u);
}

TEST(UpstreamExchange, AnUnreadBodyClosesTheClientConnectionAfterTheReply) {
  Harness h;
  h.fill_connections(1);
  h.start("POST /shop/list/x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", 1);
  ASSERT_EQ(h.client.ends, 1);
  EXPECT_EQ(h.client.ended->error, Error::upstream_overflow);
  EXPECT_TRUE(h.client.ended->close_client);
}

TEST(UpstreamExchange, FullClusterWithPendingRoomQueuesUntilTheConnectTimeout) {
  Harness h;
  h.fill_connections(0);  // shop/cart: max_connections 1, max_pending 1
  h.start("GET /shop/cart/x HTTP/1.1\r\nHost: h\r\n\r\n", 0);
  EXPECT_EQ(h.client.ends, 0);
  EXPECT_EQ(h.exchange.phase(), UpstreamExchange::Phase::queued);
  EXPECT_EQ(h.client.last_timeout, h.host.snapshot->config.timeouts.upstream_connect);
  EXPECT_EQ(h.host.peers_asked, 1);  // the free slot may sit idle on another worker
  EXPECT_FALSE(h.host.cluster_load.try_add_pending(0, 1)) << "the queued request holds the one pending place";

  h.exchange.on_deadline(h.host.clock + 5s, /*request_total_passed=*/false, false);
  ASSERT_EQ(h.client.ends, 1);
  EXPECT_EQ(h.client.ended->kind, ExchangeEnd::Kind::failed);
  EXPECT_EQ(h.client.ended->error, Error::upstream_overflow);
  EXPECT_EQ(h.ctx.retry_after_seconds, 1u);
  EXPECT_TRUE(h.host.cluster_load.try_add_pending(0, 1)) << "the pending place was given back";
  EXPECT_FALSE(h.host.queues[0].waiting());
}

TEST(UpstreamExchange, RequestTotalWhileQueuedIs504AndSparesTheBreaker) {
  Harness h;
  h.fill_connections(0);
  h.start("GET /shop/cart/x HTTP/1.1\r\nHost: h\r\n\r\n", 0);
  ASSERT_EQ(h.exchange.phase(), UpstreamExchange::Phase::queued);
  h.exchange.on_deadline(h.host.clock + 5s, /*request_total_passed=*/true, false);
  ASSERT_EQ(h.client.ends, 1);
  EXPECT_EQ(h.client.ended->error, Error::request_timeout);
  EXPECT_TRUE(h.ctx.attempt_reported) << "never sent: the endpoint's breaker is not told of a failure";
  EXPECT_EQ(h.host.health_state.breaker(h.ctx.endpoint->id).counters().opened, 0u);
}

TEST(UpstreamExchange, AbortWhileQueuedLeavesTheQueueAndCallsNobodyBack) {
  Harness h;
  h.fill_connections(0);
  h.start("GET /shop/cart/x HTTP/1.1\r\nHost: h\r\n\r\n", 0);
  ASSERT_TRUE(h.host.queues[0].waiting());
  h.exchange.abort();
  EXPECT_FALSE(h.exchange.active());
  EXPECT_FALSE(h.exchange.busy());
  EXPECT_FALSE(h.host.queues[0].waiting());
  EXPECT_TRUE(h.host.cluster_load.try_add_pending(0, 1));
  EXPECT_EQ(h.client.ends, 0);
  h.exchange.on_deadline(h.host.clock + 5s, true, false);  // a late tick does nothing
  EXPECT_EQ(h.client.ends, 0);
}

}  // namespace
}  // namespace frontdoor::proxy
