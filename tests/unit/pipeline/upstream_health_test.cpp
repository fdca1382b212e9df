#include <gtest/gtest.h>

#include "frontdoor/pipeline/upstream_health.hpp"

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

}  // namespace
}  // namespace frontdoor::pipeline
