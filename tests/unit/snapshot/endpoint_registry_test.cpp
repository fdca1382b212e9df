// Endpoint ids are leased by name and given to another name only once every snapshot listing the
// old one is gone: a headless Service whose pods come and go keeps the by-id tables (pools,
// breakers, metric series) as large as the endpoints listed now, not every address ever seen.
#include <gtest/gtest.h>

#include <thread>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/snapshot/snapshot.hpp"

namespace frontdoor::snapshot {
namespace {

TEST(EndpointRegistry, ANameKeepsItsIdWhileAnyLeaseOnItLives) {
  EndpointRegistry registry;
  auto a = registry.lease("10.0.0.1:80");
  auto b = registry.lease("10.0.0.2:80");
  EXPECT_EQ(a->id, 0u);
  EXPECT_EQ(b->id, 1u);
  EXPECT_EQ(registry.lease("10.0.0.1:80"), a) << "the same lease, so the same id";
  auto a_copy = a;
  a.reset();
  EXPECT_EQ(registry.lease("10.0.0.1:80")->id, 0u) << "a copy still holds the name";
  EXPECT_EQ(registry.lease("10.0.0.3:80")->id, 2u) << "no id is free yet";
  EXPECT_EQ(registry.size(), 3u);
}

TEST(EndpointRegistry, AnIdIsGivenToAnotherNameOnlyAfterItsLastLeaseIsGoneWithANewIncarnation) {
  EndpointRegistry registry;
  auto a = registry.lease("svc:80@10.0.0.1");
  auto b = registry.lease("svc:80@10.0.0.2");
  a.reset();
  EXPECT_EQ(registry.live(), 1u);
  auto c = registry.lease("svc:80@10.0.0.3");
  EXPECT_EQ(c->id, 0u) << "the free id is reused";
  EXPECT_EQ(c->incarnation, 1u);
  EXPECT_EQ(registry.size(), 2u);
  EXPECT_EQ(registry.incarnations(), (std::vector<std::uint32_t>{1, 0}));
  // The old name coming back is a new endpoint: it gets whatever is free, never c's id.
  auto a_again = registry.lease("svc:80@10.0.0.1");
  EXPECT_EQ(a_again->id, 2u);
  EXPECT_EQ(a_again->incarnation, 0u);
}

TEST(EndpointRegistry, ALeaseDroppedOnAnotherThreadFreesItsId) {
  EndpointRegistry registry;
  auto a = registry.lease("a:1");
  std::thread([lease = std::move(a)]() mutable { lease.reset(); }).join();
  EXPECT_EQ(registry.live(), 0u);
  EXPECT_EQ(registry.lease("b:1")->id, 0u);
}

TEST(EndpointRegistry, ALeaseMayOutliveItsRegistry) {
  std::shared_ptr<const EndpointRegistry::Lease> survivor;
  {
    EndpointRegistry registry;
    survivor = registry.lease("a:1");
  }
  survivor.reset();  // must not touch freed memory (ASan)
  SUCCEED();
}

std::shared_ptr<const Snapshot> build(EndpointRegistry& registry, const std::string& address) {
  const std::string yaml = "listeners:\n  - address: 127.0.0.1:0\nmanifests:\n"
                           "  - {project: shop, module: \"*\", endpoints: [\"" + address + "\"]}\n";
  auto loaded = config::load_config_string(yaml, "inline.yaml");
  EXPECT_TRUE(loaded.config);
  std::vector<config::ConfigError> errors;
  auto snapshot = build_snapshot(*loaded.config, registry, errors);
  EXPECT_TRUE(snapshot) << (errors.empty() ? "" : errors[0].to_string());
  return snapshot;
}

TEST(EndpointRegistry, SnapshotsOfAChurningEndpointStayAsLargeAsWhatTheyList) {
  EndpointRegistry registry;
  auto current = build(registry, "10.1.0.1:8080");
  for (int i = 2; i < 200; ++i) {
    // The next address arrives while the last snapshot is still pinned (a request in flight).
    auto next = build(registry, "10.1.0." + std::to_string(i % 250) + ":8080");
    EXPECT_NE(next->manifests.manifests()[0].endpoints[0].id, current->manifests.manifests()[0].endpoints[0].id)
        << "two names live at once never share an id";
    current = std::move(next);  // the old one retired: its id is free
  }
  EXPECT_LE(current->endpoint_count, 2u) << "ids are reused: not one per address ever seen";
  const auto& e = current->manifests.manifests()[0].endpoints[0];
  EXPECT_EQ(current->endpoint_names[e.id], "10.1.0.199:8080");
  EXPECT_GT(current->endpoint_incarnations[e.id], 0u);
  // The id not listed now has no name: no metric series for it.
  EXPECT_EQ(current->endpoint_names[e.id == 0 ? 1 : 0], "");
}

}  // namespace
}  // namespace frontdoor::snapshot
