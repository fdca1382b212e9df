#include "frontdoor/resilience/retry_budget.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>

#include "frontdoor/resilience/random.hpp"
#include "unit/resilience/manual_clock.hpp"

namespace frontdoor::resilience {
namespace {

using testing::ManualClock;
using namespace std::chrono_literals;

TEST(RetryBudget, FloorAllowsRetriesWithoutTraffic) {
  ManualClock clock;
  RetryBudget b({.budget_percent = 20, .min_retries_per_second = 1, .window = 10s});
  EXPECT_EQ(b.available(clock.now()), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.try_acquire_retry(clock.now())) << i;
  EXPECT_FALSE(b.try_acquire_retry(clock.now()));
  EXPECT_EQ(b.counters().retries, 10u);
  EXPECT_EQ(b.counters().exhausted, 1u);
}

TEST(RetryBudget, PercentOfRequests) {
  ManualClock clock;
  RetryBudget b({.budget_percent = 20, .min_retries_per_second = 0, .window = 10s});
  EXPECT_FALSE(b.try_acquire_retry(clock.now()));
  for (int i = 0; i < 10; ++i) b.on_request(clock.now());
  EXPECT_EQ(b.available(clock.now()), 2u);
  EXPECT_TRUE(b.try_acquire_retry(clock.now()));
  EXPECT_TRUE(b.try_acquire_retry(clock.now()));
  EXPECT_FALSE(b.try_acquire_retry(clock.now()));
  for (int i = 0; i < 5; ++i) b.on_request(clock.now());  // 15 requests -> 3
  EXPECT_TRUE(b.try_acquire_retry(clock.now()));
  EXPECT_FALSE(b.try_acquire_retry(clock.now()));
}

TEST(RetryBudget, CapsAmplificationDuringAnOutage) {
  // Every request fails and the caller retries as often as the budget allows: over a long run the
  // retries stay within 20 % of requests plus the floor.
  ManualClock clock;
  RetryBudget b({.budget_percent = 20, .min_retries_per_second = 1, .window = 10s, .window_buckets = 10});
  std::uint64_t retries = 0;
  for (int i = 0; i < 100000; ++i) {  // 1000 requests per second for 100 s
    b.on_request(clock.now());
    while (b.try_acquire_retry(clock.now())) ++retries;
    clock.advance(1ms);
  }
  EXPECT_LE(retries, 100000u * 20 / 100 + 100u * 1 + 300u);  // + one window's floor and bucket edge
  EXPECT_GE(retries, 100000u * 20 / 100);
}

TEST(RetryBudget, WindowForgets) {
  ManualClock clock;
  RetryBudget b({.budget_percent = 50, .min_retries_per_second = 0, .window = 10s});
  for (int i = 0; i < 10; ++i) b.on_request(clock.now());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.try_acquire_retry(clock.now()));
  EXPECT_FALSE(b.try_acquire_retry(clock.now()));
  clock.advance(10s);
  EXPECT_EQ(b.available(clock.now()), 0u);  // requests forgotten along with the retries
  for (int i = 0; i < 2; ++i) b.on_request(clock.now());
  EXPECT_TRUE(b.try_acquire_retry(clock.now()));
  EXPECT_FALSE(b.try_acquire_retry(clock.now()));
}

TEST(RetryBudget, ZeroBudgetZeroFloorNeverRetries) {
  ManualClock clock;
  RetryBudget b({.budget_percent = 0, .min_retries_per_second = 0});
  for (int i = 0; i < 100; ++i) b.on_request(clock.now());
  EXPECT_FALSE(b.try_acquire_retry(clock.now()));
  EXPECT_EQ(b.counters().requests, 100u);
}

TEST(Backoff, CeilingDoublesAndCaps) {
  EXPECT_EQ(backoff_ceiling(0, 25ms, 1s), 25ms);
  EXPECT_EQ(backoff_ceiling(1, 25ms, 1s), 50ms);
  EXPECT_EQ(backoff_ceiling(3, 25ms, 1s), 200ms);
  EXPECT_EQ(backoff_ceiling(6, 25ms, 1s), 1s);
  EXPECT_EQ(backoff_ceiling(4000000000u, 25ms, 1s), 1s);
  EXPECT_EQ(backoff_ceiling(0, 2s, 1s), 1s);
  EXPECT_EQ(backoff_ceiling(5, 0ms, 1s), 0ms);
  EXPECT_EQ(backoff_ceiling(70, Duration(1), Duration::max()), Duration::max());  // no overflow
  EXPECT_LE(backoff_delay(70, Duration(1), Duration::max(), UINT64_MAX), Duration::max());
}

TEST(Backoff, FullJitterSpansZeroToCeiling) {
  EXPECT_EQ(backoff_delay(2, 25ms, 1s, 0), 0ms);
  EXPECT_EQ(backoff_delay(2, 25ms, 1s, UINT64_MAX), 100ms);
  EXPECT_EQ(backoff_delay(2, 25ms, 1s, UINT64_MAX / 2 + 1), 50ms);
  EXPECT_EQ(backoff_delay(0, 0ms, 1s, UINT64_MAX), 0ms);
  SplitMix64 rng(42);
  Duration lo = Duration::max(), hi = Duration::zero();
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const Duration d = backoff_delay(3, 25ms, 1s, rng());
    ASSERT_GE(d, 0ms);
    ASSERT_LE(d, 200ms);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    sum += std::chrono::duration<double, std::milli>(d).count();
  }
  EXPECT_LT(lo, 2ms);
  EXPECT_GT(hi, 198ms);
  EXPECT_NEAR(sum / 10000, 100.0, 3.0);  // mean of uniform [0, 200 ms]
}

TEST(Backoff, SplitMix64IsDeterministicAndSpreads) {
  SplitMix64 a(7), b(7), c(8);
  for (int i = 0; i < 100; ++i) {
    const auto x = a();
    EXPECT_EQ(x, b());
    EXPECT_NE(x, c());
  }
  SplitMix64 zero(0);
  EXPECT_EQ(zero(), 0xe220a8397b1dcdafULL);  // reference value of splitmix64 seeded with 0
  std::uint64_t counts[10] = {};
  for (int i = 0; i < 100000; ++i) ++counts[a.below(10)];
  for (auto n : counts) EXPECT_NEAR(static_cast<double>(n), 10000.0, 500.0);
  std::set<std::uint64_t> distinct;
  for (int i = 0; i < 1000; ++i) distinct.insert(a());
  EXPECT_EQ(distinct.size(), 1000u);
}

}  // namespace
}  // namespace frontdoor::resilience
