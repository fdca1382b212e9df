#include <gtest/gtest.h>

#include "frontdoor/pipeline/upstream_health.hpp"

#include "frontdoor/config/loader.hpp"
#include "frontdoor/snapshot/snapshot.hpp"

namespace frontdoor::pipeline {
namespace {

manifest::Manifest with_endpoints(std::size_t n, std::uint64_t identity) {
  manifest::Manifest m;
  m.index = 4;
  m.identity = identity;
  for (std::size_t i = 0; i < n; ++i) m.endpoints.push_back({static_cast<manifest::EndpointId>(i), "e", {}, 1, 0, "e", {}});
  return m;
}

// The manifest store reuses a slot (index) for another manifest, or a new version of one: a request
// still on the older snapshot and one on the newer each get state built for their own manifest.
TEST(UpstreamHealth, StateAtAnIndexFollowsTheManifestsIdentity) {
  UpstreamHealth health;
  const auto five = with_endpoints(5, 1);
  const auto two = with_endpoints(2, 2);
  auto& a = health.state(five);
  for (int i = 0; i < 3; ++i) (void)a.round_robin.pick([](std::size_t) { return true; });
  EXPECT_EQ(a.identity, 1u);
  auto& b = health.state(two);
  EXPECT_EQ(b.identity, 2u);
  for (int i = 0; i < 10; ++i) EXPECT_LT(b.round_robin.pick([](std::size_t) { return true; }), 2u);
  EXPECT_EQ(&health.state(two), &b);  // the same manifest keeps its state
}

std::shared_ptr<const snapshot::Snapshot> snapshot_of(const std::string& endpoints, snapshot::EndpointRegistry& registry) {
  auto loaded = config::load_config_string(
      "listeners:\n  - address: 127.0.0.1:0\nmanifests:\n  - {project: shop, module: cart, endpoints: [" + endpoints + "]}\n",
      "inline.yaml");
  EXPECT_TRUE(loaded.config);
  std::vector<config::ConfigError> errors;
  auto snapshot = snapshot::build_snapshot(*loaded.config, registry, errors);
  EXPECT_TRUE(snapshot);
  return snapshot;
}

// After a reload that changed a manifest, requests still on the older snapshot finish while new ones
// start: each reports to its own manifest's state, and neither wipes the other's (ejections, the
// retry budget's history) at every turn.
TEST(UpstreamHealth, RequestsOnTheOldSnapshotDoNotWipeTheNewManifestsState) {
  snapshot::EndpointRegistry registry;
  UpstreamHealth health;
  const auto before = snapshot_of("\"127.0.0.1:9001\", \"127.0.0.1:9002\"", registry);
  health.install(*before);
  const auto& old_manifest = before->manifests.manifests()[0];
  auto* old_state = &health.state(old_manifest);
  old_state->budget.on_request({});
  const auto after = snapshot_of("\"127.0.0.1:9001\", \"127.0.0.1:9002\", \"127.0.0.1:9003\"", registry);
  health.install(*after);
  const auto& new_manifest = after->manifests.manifests()[0];
  ASSERT_NE(old_manifest.identity, new_manifest.identity);
  auto* current = &health.state(new_manifest);
  for (int i = 0; i < 5; ++i) {
    current->budget.on_request({});
    EXPECT_EQ(&health.state(old_manifest), old_state);  // a request of the old snapshot reports to its own
    EXPECT_EQ(old_state->budget.counters().requests, 1u);
    EXPECT_EQ(&health.state(new_manifest), current) << i;
  }
  EXPECT_EQ(current->budget.counters().requests, 5u);
  EXPECT_EQ(health.manifest_states()[0].get(), current);  // what metrics read
}

// An ejection a peer saw on the old list names an index that is another endpoint in the new one.
TEST(UpstreamHealth, APeersEjectionAppliesOnlyToTheSameManifest) {
  snapshot::EndpointRegistry registry;
  UpstreamHealth health;
  const auto before = snapshot_of("\"127.0.0.1:9001\", \"127.0.0.1:9002\"", registry);
  const auto after = snapshot_of("\"127.0.0.1:9002\", \"127.0.0.1:9003\"", registry);
  health.install(*after);
  const auto& m = after->manifests.manifests()[0];
  const auto now = resilience::Clock::now();
  health.eject_from_peer(0, before->manifests.manifests()[0].identity, 1, now);
  EXPECT_FALSE(health.state(m).outliers.ejected(1, now));
  health.eject_from_peer(0, m.identity, 1, now);
  EXPECT_TRUE(health.state(m).outliers.ejected(1, now));
}

}  // namespace
}  // namespace frontdoor::pipeline
