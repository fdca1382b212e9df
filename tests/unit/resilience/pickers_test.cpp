#include "frontdoor/resilience/pickers.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "frontdoor/resilience/hash.hpp"
#include "frontdoor/resilience/random.hpp"
#include "unit/resilience/manual_clock.hpp"

namespace frontdoor::resilience {
namespace {

using testing::ManualClock;
using namespace std::chrono_literals;

auto all = [](std::size_t) { return true; };
auto none = [](std::size_t) { return false; };

TEST(Hash, StableReferenceValues) {
  // FNV-1a 64 reference vectors, and pinned outputs: these values may live in cookies, never change them.
  static_assert(fnv1a64("") == 0xcbf29ce484222325ULL);
  static_assert(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  static_assert(fnv1a64("foobar") == 0x85944171f73967e8ULL);
  static_assert(mix64(0) == 0);
  EXPECT_EQ(hash64("a"), mix64(0xaf63dc4c8601ec8cULL));
  EXPECT_EQ(hash64("/shop/cart/items/42"), hash64(std::string("/shop/cart/items/") + "42"));
  EXPECT_NE(hash64("ab"), hash64("ba"));
  EXPECT_NE(hash_combine(1, 2), hash_combine(2, 1));
  EXPECT_NE(hash_combine(0, 0), 0u);
}

TEST(Hash, SpreadsSimilarKeys) {
  std::array<int, 16> buckets{};
  for (int i = 0; i < 16000; ++i) ++buckets[hash64("user-" + std::to_string(i)) >> 60];
  for (int n : buckets) EXPECT_NEAR(n, 1000, 150);
}

TEST(PickerRoundRobin, RotatesAndSkipsUnusable) {
  RoundRobinPicker rr(4);
  std::vector<std::size_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(rr.pick(all));
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 1, 2, 3, 0, 1}));
  auto not2 = [](std::size_t i) { return i != 2; };
  got.clear();
  for (int i = 0; i < 6; ++i) got.push_back(rr.pick(not2));
  EXPECT_EQ(got, (std::vector<std::size_t>{3, 0, 1, 3, 0, 1}));
  EXPECT_EQ(rr.pick(none), kNoEndpoint);
  RoundRobinPicker empty(0);
  EXPECT_EQ(empty.pick(all), kNoEndpoint);
}

TEST(PickerSmoothWeighted, NginxSequence) {
  const std::uint32_t w[] = {5, 1, 1};
  SmoothWeightedPicker p(w);
  std::string seq;
  for (int i = 0; i < 14; ++i) seq += static_cast<char>('a' + p.pick(all));
  EXPECT_EQ(seq, "aabacaaaabacaa");  // nginx: { a, a, b, a, c, a, a } repeated
}

TEST(PickerSmoothWeighted, ProportionsZeroWeightAndUnusable) {
  const std::uint32_t w[] = {3, 2, 0, 1};
  SmoothWeightedPicker p(w);
  std::array<int, 4> n{};
  for (int i = 0; i < 600; ++i) ++n[p.pick(all)];
  EXPECT_EQ(n, (std::array<int, 4>{300, 200, 0, 100}));
  n = {};
  auto not0 = [](std::size_t i) { return i != 0; };
  for (int i = 0; i < 300; ++i) ++n[p.pick(not0)];
  EXPECT_EQ(n, (std::array<int, 4>{0, 200, 0, 100}));
  EXPECT_EQ(p.pick(none), kNoEndpoint);
  auto only2 = [](std::size_t i) { return i == 2; };
  EXPECT_EQ(p.pick(only2), kNoEndpoint);  // weight 0 is never picked
}

TEST(PickerLeastOutstanding, PicksLeastLoadedAndRotatesTies) {
  const std::uint32_t w[] = {1, 1, 1};
  LeastOutstandingPicker p(w);
  std::array<int, 3> inflight{2, 0, 1};
  auto load = [&](std::size_t i) { return inflight[i]; };
  EXPECT_EQ(p.pick(all, load), 1u);
  inflight = {0, 0, 0};
  std::vector<std::size_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(p.pick(all, load));
  EXPECT_EQ(got, (std::vector<std::size_t>{1, 2, 0, 1, 2, 0}));
  inflight = {5, 0, 9};
  auto not1 = [](std::size_t i) { return i != 1; };
  EXPECT_EQ(p.pick(not1, load), 0u);
  EXPECT_EQ(p.pick(none, load), kNoEndpoint);
}

TEST(PickerLeastOutstanding, WeightedByCapacity) {
  const std::uint32_t w[] = {1, 4, 0};
  LeastOutstandingPicker p(w);
  std::array<int, 3> inflight{0, 0, 0};
  auto load = [&](std::size_t i) { return inflight[i]; };
  // Simulate requests that never finish: the weight-4 endpoint takes 4 for each one the other takes.
  for (int i = 0; i < 50; ++i) ++inflight[p.pick(all, load)];
  EXPECT_EQ(inflight[0], 10);
  EXPECT_EQ(inflight[1], 40);
  EXPECT_EQ(inflight[2], 0);
}

TEST(Ewma, FirstSampleThenTimeDecayedAverage) {
  ManualClock clock;
  EwmaLatency e(10s, /*peak=*/false);
  EXPECT_FALSE(e.has_sample());
  EXPECT_EQ(e.value_ns(clock.now()), 0.0);
  e.update(100ms, clock.now());
  EXPECT_DOUBLE_EQ(e.value_ns(clock.now()), 100e6);
  clock.advance(10s);  // one decay time: the new sample weighs 1 - 1/e
  e.update(200ms, clock.now());
  EXPECT_NEAR(e.value_ns(clock.now()), 100e6 / std::exp(1.0) + 200e6 * (1 - 1 / std::exp(1.0)), 1.0);
  const double v = e.value_ns(clock.now());
  e.update(1s, clock.now());  // same instant: no weight
  EXPECT_DOUBLE_EQ(e.value_ns(clock.now()), v);
}

TEST(Ewma, ManySmallStepsConvergeToTheSample) {
  ManualClock clock;
  EwmaLatency e(1s, false);
  e.update(500ms, clock.now());
  for (int i = 0; i < 20000; ++i) {  // 20 decay times: the first sample's weight is e^-20
    clock.advance(1ms);
    e.update(10ms, clock.now());
  }
  EXPECT_NEAR(e.value_ns(clock.now()), 10e6, 10.0);
}

TEST(Ewma, PeakJumpsUpAndReadDecaysWhenIdle) {
  ManualClock clock;
  EwmaLatency e(10s, /*peak=*/true);
  e.update(10ms, clock.now());
  clock.advance(1ms);
  e.update(300ms, clock.now());
  EXPECT_DOUBLE_EQ(e.value_ns(clock.now()), 300e6);
  clock.advance(10s);
  EXPECT_NEAR(e.value_ns(clock.now()), 300e6 / std::exp(1.0), 1.0);  // idle: decays towards 0
  EXPECT_NEAR(e.value_ns(clock.now() - 20s), 300e6, 1.0);            // clock behind: no growth
}

TEST(PickerPowerOfTwo, CostAndPenalty) {
  EXPECT_EQ(p2c_cost(0, 0), 0.0);
  EXPECT_GT(p2c_cost(0, 1), p2c_cost(10e9, 100));  // unmeasured and busy: avoided
  EXPECT_LT(p2c_cost(0, 1), p2c_cost(0, 2));
  EXPECT_EQ(p2c_cost(5e6, 3), 20e6);
}

TEST(PickerPowerOfTwo, ChoosesCheaperOfTwoDistinct) {
  PowerOfTwoPicker p(4);
  std::array<double, 4> cost{40, 10, 30, 20};
  auto c = [&](std::size_t i) { return cost[i]; };
  // random: low 32 bits choose a, high 32 bits the offset of b.
  const std::uint64_t a0_b1 = (0ULL << 32) | 0;            // a = 0, b = 0 + 1 + 0 = 1
  EXPECT_EQ(p.pick(a0_b1, all, c), 1u);
  const std::uint64_t a2_b3 = (0ULL << 32) | 0x80000000ULL;  // a = 2, b = 3
  EXPECT_EQ(p.pick(a2_b3, all, c), 3u);
  auto not3 = [](std::size_t i) { return i != 3; };
  EXPECT_EQ(p.pick(a2_b3, not3, c), 2u);  // b moves from 3 to the next usable, 0 (cost 40): a wins
  auto not2 = [](std::size_t i) { return i != 2; };
  EXPECT_EQ(p.pick(a2_b3, not2, c), 3u);  // a moves from 2 to 3; b (3) is a, so moves on to 0: 3 wins
}

TEST(PickerPowerOfTwo, EdgeCases) {
  auto c = [](std::size_t i) { return static_cast<double>(i); };
  PowerOfTwoPicker empty(0);
  EXPECT_EQ(empty.pick(123, all, c), kNoEndpoint);
  PowerOfTwoPicker one(1);
  EXPECT_EQ(one.pick(123, all, c), 0u);
  EXPECT_EQ(one.pick(123, none, c), kNoEndpoint);
  PowerOfTwoPicker three(3);
  auto only1 = [](std::size_t i) { return i == 1; };
  SplitMix64 rng(1);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(three.pick(rng(), only1, c), 1u);
  EXPECT_EQ(three.pick(rng(), none, c), kNoEndpoint);
}

TEST(PickerPowerOfTwo, AvoidsSlowEndpointUnderLoad) {
  // Five endpoints, one five times slower (in-flight counts left at 0 to isolate the latency term).
  ManualClock clock;
  PowerOfTwoPicker p(5);
  std::array<EwmaLatency, 5> ewma{};
  for (auto& e : ewma) e.update(10ms, clock.now());
  std::array<int, 5> picked{};
  SplitMix64 rng(99);
  for (int i = 0; i < 20000; ++i) {
    clock.advance(100us);
    auto cost = [&](std::size_t k) { return p2c_cost(ewma[k].value_ns(clock.now()), 0); };
    const std::size_t k = p.pick(rng(), all, cost);
    ++picked[k];
    ewma[k].update(k == 4 ? 50ms : 10ms, clock.now());
  }
  // The slow one loses every pairing once its EWMA has risen; only its idle decay brings it back briefly.
  EXPECT_LT(picked[4], 200);
  for (int k = 0; k < 4; ++k) EXPECT_GT(picked[k], 4000);
}

TEST(PickerPowerOfTwo, EveryUsableEndpointCanWin) {
  PowerOfTwoPicker p(10);
  auto c = [](std::size_t) { return 1.0; };
  std::array<int, 10> n{};
  SplitMix64 rng(5);
  for (int i = 0; i < 10000; ++i) ++n[p.pick(rng(), all, c)];
  for (int x : n) EXPECT_GT(x, 700);
}

std::vector<RingEndpoint> ring_endpoints(int count, int skip = -1) {
  std::vector<RingEndpoint> out;
  for (int i = 0; i < count; ++i) {
    if (i == skip) continue;
    out.push_back({hash64("10.0.0." + std::to_string(i) + ":8080"), 1});
  }
  return out;
}

TEST(PickerConsistentHash, SameKeySameEndpointAndBalanced) {
  auto eps = ring_endpoints(10);
  ConsistentHashRing ring(eps);
  EXPECT_EQ(ring.points(), 1600u);
  std::array<int, 10> n{};
  for (std::uint64_t k = 0; k < 100000; ++k) {
    const std::size_t i = ring.pick(k);
    ASSERT_LT(i, 10u);
    ASSERT_EQ(i, ring.pick(k));
    ++n[i];
  }
  for (int x : n) {
    EXPECT_GT(x, 7000);
    EXPECT_LT(x, 13000);
  }
  ConsistentHashRing again(eps);  // deterministic build
  for (std::uint64_t k = 0; k < 1000; ++k) EXPECT_EQ(ring.pick(k), again.pick(k));
}

TEST(PickerConsistentHash, RemovingOneOfTenMovesOnlyItsKeys) {
  auto eps = ring_endpoints(10);
  auto fewer = ring_endpoints(10, /*skip=*/3);
  ConsistentHashRing before(eps);
  ConsistentHashRing after(fewer);
  int moved = 0;
  constexpr int kKeys = 100000;
  for (int k = 0; k < kKeys; ++k) {
    const std::uint64_t key = hash64("/item/" + std::to_string(k));
    const auto b = eps[before.pick(key)].identity;
    const auto a = fewer[after.pick(key)].identity;
    if (a != b) {
      ++moved;
      ASSERT_EQ(b, eps[3].identity) << "a key not owned by the removed endpoint moved";
    }
  }
  EXPECT_GT(moved, kKeys * 7 / 100);
  EXPECT_LT(moved, kKeys * 13 / 100);
}

TEST(PickerConsistentHash, UnusableIsLikeRemoved) {
  auto eps = ring_endpoints(10);
  auto fewer = ring_endpoints(10, 3);
  ConsistentHashRing ring(eps), smaller(fewer);
  auto not3 = [](std::size_t i) { return i != 3; };
  for (std::uint64_t k = 0; k < 20000; ++k) {
    EXPECT_EQ(eps[ring.pick(k, not3)].identity, fewer[smaller.pick(k)].identity);
  }
  EXPECT_EQ(ring.pick(7, none), kNoEndpoint);
}

TEST(PickerConsistentHash, AddingOneMovesAboutItsShare) {
  auto eps = ring_endpoints(10);
  auto more = ring_endpoints(11);
  ConsistentHashRing before(eps), after(more);
  int moved = 0;
  for (std::uint64_t k = 0; k < 100000; ++k) {
    const auto b = eps[before.pick(k)].identity;
    const auto a = more[after.pick(k)].identity;
    if (a != b) {
      ++moved;
      ASSERT_EQ(a, more[10].identity);  // keys only move to the new endpoint
    }
  }
  EXPECT_GT(moved, 5000);
  EXPECT_LT(moved, 13000);
}

TEST(PickerConsistentHash, WeightsAndCaps) {
  std::vector<RingEndpoint> eps{{hash64("a"), 3}, {hash64("b"), 1}, {hash64("c"), 0}};
  ConsistentHashRing ring(eps, {.replicas_per_weight = 100});
  EXPECT_EQ(ring.points(), 400u);
  std::array<int, 3> n{};
  for (std::uint64_t k = 0; k < 40000; ++k) ++n[ring.pick(k)];
  EXPECT_NEAR(n[0], 30000, 3000);
  EXPECT_EQ(n[2], 0);
  ConsistentHashRing capped(eps, {.replicas_per_weight = 100, .max_points = 40});
  EXPECT_LE(capped.points(), 40u);
  EXPECT_GE(capped.points(), 2u);
  ConsistentHashRing empty(std::span<const RingEndpoint>{});
  EXPECT_EQ(empty.pick(1), kNoEndpoint);
}

TEST(PriorityFailover, LowestLevelWithUsableEndpoint) {
  const std::uint32_t prio[] = {0, 0, 1, 1, 2};
  PriorityLevels levels(prio);
  auto c = levels.choose(all);
  EXPECT_EQ(c.priority, 0u);
  EXPECT_FALSE(c.panic);
  auto primaries_down = [](std::size_t i) { return i >= 2; };
  c = levels.choose(primaries_down);
  EXPECT_EQ(c.priority, 1u);
  EXPECT_FALSE(c.panic);
  auto only4 = [](std::size_t i) { return i == 4; };
  EXPECT_EQ(levels.choose(only4).priority, 2u);
  // The picker then sees only the chosen level.
  RoundRobinPicker rr(5);
  auto usable = primaries_down;
  auto restricted = levels.usable_in(levels.choose(usable), usable);
  std::vector<std::size_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(rr.pick(restricted));
  EXPECT_EQ(got, (std::vector<std::size_t>{2, 3, 2, 3}));
}

TEST(PriorityFailover, PanicReturnsAllOfFirstLevel) {
  const std::uint32_t prio[] = {1, 2, 1, 3};  // levels need not start at 0
  PriorityLevels levels(prio);
  auto c = levels.choose(none);
  EXPECT_TRUE(c.panic);
  EXPECT_EQ(c.priority, 1u);
  auto restricted = levels.usable_in(c, none);
  EXPECT_TRUE(restricted(0));
  EXPECT_FALSE(restricted(1));
  EXPECT_TRUE(restricted(2));
  EXPECT_FALSE(restricted(3));
  EXPECT_FALSE(levels.in_level(99, c));
  PriorityLevels empty(std::span<const std::uint32_t>{});
  EXPECT_TRUE(empty.choose(all).panic);
}

}  // namespace
}  // namespace frontdoor::resilience
