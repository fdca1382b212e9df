// The manifest stage with the manifest store's view (snapshot->stored): hits, waits, refreshes and
// the fallbacks, driven by a manual clock and a fake fetcher that records what the stage asked.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/pipeline/stages.hpp"

namespace frontdoor::pipeline {
namespace {

using namespace std::chrono_literals;

struct FakeFetcher final : ManifestFetcher {
  std::vector<std::string> awaited, refreshed;
  void await(const std::string& key, Waiter&) override { awaited.push_back(key); }
  void refresh(const std::string& key) override { refreshed.push_back(key); }
};

struct StoreHarness {
  std::shared_ptr<snapshot::Snapshot> snapshot;
  snapshot::EndpointRegistry registry;
  FakeFetcher fetcher;
  ManifestCounts counts;
  ManifestStage stage{&fetcher, &counts};
  std::string text;
  http::RequestHead head;
  std::vector<http::Header> headers;
  RequestContext ctx;
  Clock::time_point now = Clock::time_point{} + 1000s;

  StoreHarness() {
    auto loaded = config::load_config_string(
        "listeners: [{address: 127.0.0.1:0}]\nmanifests: [{project: '*', module: '*', endpoints: [127.0.0.1:9000]}]\n",
        "inline.yaml");
    std::vector<config::ConfigError> errors;
    snapshot = std::const_pointer_cast<snapshot::Snapshot>(snapshot::build_snapshot(*loaded.config, registry, errors));
  }

  // The store's view: shop/cart/* loaded (fresh until `expires`), shop/search/* known, not loaded.
  void publish(bool known, Clock::time_point refresh, Clock::time_point expires, std::int32_t cart = 1) {
    auto stored = config::load_manifests_string(
        R"({"project":"shop","module":"cart","endpoints":["127.0.0.1:9100"]})", "doc", snapshot->config,
        config::ManifestsForm::one);
    std::vector<std::string> problems;
    auto all = snapshot->manifests.manifests();
    all.resize(1);
    all.push_back(snapshot::compile_manifest(stored.manifests[0], snapshot::resolve_endpoints(stored.manifests[0], problems),
                                             *snapshot, registry));
    snapshot->manifests = manifest::ManifestTable(std::move(all), 1);
    auto index = std::make_shared<manifest::StoredIndex>();
    manifest::StoredEntry e{"shop/cart/*", cart, 3, refresh, expires};
    index->add("shop", "cart", "*", e);
    index->add("shop", "search", "*", manifest::StoredEntry{"shop/search/*", -1, 0, {}, {}});
    index->set_known(known);
    snapshot->stored = index;
  }

  Verdict request(const std::string& target, bool waited = false, bool index_waited = false) {
    text = "GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n";
    head.headers = &headers;
    http::HeadScanner scanner;
    Error error = Error::ok;
    EXPECT_EQ(http::parse_request_head(text, snapshot->request_limits, scanner, head, error), http::ParseStatus::complete);
    ctx.reset();
    ctx.manifest_waited = waited;
    ctx.index_waited = index_waited;
    ctx.snapshot = snapshot.get();
    ctx.request = &head;
    ctx.default_environment = "production";
    ctx.started = ctx.now = now;
    return stage.on_request(ctx);
  }
  std::uint16_t port() const { return ctx.manifest->endpoints[0].address.port(); }
};

TEST(ManifestStageWithStore, AStoredMatchWinsAndIsCountedAsAnL1Hit) {
  StoreHarness h;
  h.publish(true, h.now + 60s, h.now + 100s);
  ASSERT_EQ(h.request("/shop/cart/1"), Verdict::Continue);
  EXPECT_EQ(h.port(), 9100);
  ASSERT_EQ(h.request("/blog/x"), Verdict::Continue);  // no stored key: the embedded one
  EXPECT_EQ(h.port(), 9000);
  EXPECT_EQ(h.counts.stored_hits, 1u);
  EXPECT_TRUE(h.fetcher.awaited.empty());
  EXPECT_TRUE(h.fetcher.refreshed.empty());
}

TEST(ManifestStageWithStore, NotLoadedWaitsOnceThenFallsBackToTheEmbedded) {
  StoreHarness h;
  h.publish(true, h.now + 60s, h.now + 100s);
  EXPECT_EQ(h.request("/shop/search/1"), Verdict::Suspend);
  EXPECT_EQ(h.fetcher.awaited, std::vector<std::string>{"shop/search/*"});
  EXPECT_TRUE(h.ctx.repin_snapshot);
  // Woken, still not loaded (the store gave up): the embedded manifests, no second wait.
  ASSERT_EQ(h.request("/shop/search/1", true), Verdict::Continue);
  EXPECT_EQ(h.port(), 9000);
  EXPECT_EQ(h.fetcher.awaited.size(), 1u);
  EXPECT_EQ(h.counts.stored_misses, 1u);
  EXPECT_EQ(h.counts.embedded_fallbacks, 1u);
}

TEST(ManifestStageWithStore, DueForRefreshAsksOnceAndServesMeanwhile) {
  StoreHarness h;
  h.publish(true, h.now - 1s, h.now + 100s);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(h.request("/shop/cart/1"), Verdict::Continue);
  EXPECT_EQ(h.fetcher.refreshed, std::vector<std::string>{"shop/cart/*"});  // once per entry, not per request
  EXPECT_EQ(h.counts.stored_hits, 3u);
}

TEST(ManifestStageWithStore, ExpiredWaitsForAFreshCopyAndServesTheStaleOneIfTheFetchFailed) {
  StoreHarness h;
  h.publish(true, h.now - 10s, h.now - 1s);
  EXPECT_EQ(h.request("/shop/cart/1"), Verdict::Suspend);
  EXPECT_EQ(h.fetcher.awaited, std::vector<std::string>{"shop/cart/*"});
  ASSERT_EQ(h.request("/shop/cart/1", true), Verdict::Continue);  // still expired after the wait
  EXPECT_EQ(h.port(), 9100);
  EXPECT_EQ(h.counts.stale_served, 1u);
}

TEST(ManifestStageWithStore, BeforeTheIndexIsKnownARequestWaitsForIt) {
  StoreHarness h;
  h.publish(false, h.now + 60s, h.now + 100s);
  EXPECT_EQ(h.request("/blog/x"), Verdict::Suspend);
  EXPECT_EQ(h.fetcher.awaited, std::vector<std::string>{""});
  ASSERT_EQ(h.request("/blog/x", false, true), Verdict::Continue);
  EXPECT_EQ(h.port(), 9000);
  // A stored key not loaded yet still gets its own wait after the index's.
  h.publish(true, h.now + 60s, h.now + 100s);
  EXPECT_EQ(h.request("/shop/search/1", false, true), Verdict::Suspend);
  EXPECT_EQ(h.fetcher.awaited.back(), "shop/search/*");
}

TEST(ManifestStageWithStore, KnownUnavailableServesTheEmbeddedWithoutWaiting) {
  StoreHarness h;
  h.publish(true, {}, h.now + 2s, -1);  // the store failed a moment ago: do not ask again yet
  ASSERT_EQ(h.request("/shop/cart/1"), Verdict::Continue);
  EXPECT_EQ(h.port(), 9000);
  EXPECT_TRUE(h.fetcher.awaited.empty());
  EXPECT_EQ(h.counts.embedded_fallbacks, 1u);
}

}  // namespace
}  // namespace frontdoor::pipeline
