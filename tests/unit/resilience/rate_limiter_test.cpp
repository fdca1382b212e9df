#include "frontdoor/resilience/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "frontdoor/resilience/hash.hpp"
#include "unit/resilience/manual_clock.hpp"

namespace frontdoor::resilience {
namespace {

using testing::ManualClock;
using namespace std::chrono_literals;

// ---- TokenBucket ------------------------------------------------------------------------------

TEST(TokenBucket, BurstThenRate) {
  ManualClock clock;
  TokenBucket b({.rate_per_second = 10, .burst = 5}, clock.now());
  for (int i = 0; i < 5; ++i) {
    const auto d = b.try_acquire(clock.now());
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, static_cast<std::uint64_t>(4 - i));
    EXPECT_EQ(d.retry_after, 0ns);
  }
  auto d = b.try_acquire(clock.now());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.retry_after, 100ms);  // one token at 10/s
  EXPECT_EQ(d.reset_after, 500ms);  // five tokens to refill
  clock.advance(99ms);
  EXPECT_FALSE(b.try_acquire(clock.now()).allowed);
  clock.advance(1ms);
  EXPECT_TRUE(b.try_acquire(clock.now()).allowed);
  clock.advance(10s);  // refills to the burst, no further
  EXPECT_DOUBLE_EQ(b.tokens(clock.now()), 5.0);
}

TEST(TokenBucket, CostAndRetryAfterForIt) {
  ManualClock clock;
  TokenBucket b({.rate_per_second = 2, .burst = 10}, clock.now());
  EXPECT_TRUE(b.try_acquire(clock.now(), 7).allowed);
  auto d = b.try_acquire(clock.now(), 5);  // 3 left, needs 2 more: 1 s at 2/s
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 3u);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_TRUE(b.try_acquire(clock.now(), 3).allowed);
  d = b.try_acquire(clock.now(), 11);  // above the burst: never
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, Duration::max());
}

TEST(TokenBucket, FractionalRefillAndClockGoingBack) {
  ManualClock clock;
  TokenBucket b({.rate_per_second = 3, .burst = 1}, clock.now());
  EXPECT_TRUE(b.try_acquire(clock.now()).allowed);
  clock.advance(100ms);
  EXPECT_FALSE(b.try_acquire(clock.now()).allowed);
  EXPECT_FALSE(b.try_acquire(clock.now() - 1s).allowed);  // a lagging clock does not refill or break
  clock.advance(234ms);  // 334 ms in total > 1/3 s
  EXPECT_TRUE(b.try_acquire(clock.now()).allowed);
  // Polled every 10 ms, a bucket of 1 overflows: 34 ticks give 1.02 tokens, the 0.02 above the burst is
  // lost, so 1 per 340 ms. A bucket of 2 keeps the remainder and reaches the full 3/s.
  TokenBucket roomy({.rate_per_second = 3, .burst = 2}, clock.now());
  roomy.try_acquire(clock.now(), 2);
  int allowed = 0, roomy_allowed = 0;
  for (int i = 0; i < 3000; ++i) {  // 30 s
    clock.advance(10ms);
    allowed += b.try_acquire(clock.now()).allowed;
    roomy_allowed += roomy.try_acquire(clock.now()).allowed;
  }
  EXPECT_EQ(allowed, 88);
  EXPECT_EQ(roomy_allowed, 90);
}

TEST(TokenBucket, ZeroRateNeverRefills) {
  ManualClock clock;
  TokenBucket b({.rate_per_second = 0, .burst = 2}, clock.now());
  EXPECT_TRUE(b.try_acquire(clock.now()).allowed);
  EXPECT_TRUE(b.try_acquire(clock.now()).allowed);
  clock.advance(1h);
  auto d = b.try_acquire(clock.now());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, Duration::max());
}

// ---- SlidingWindow ----------------------------------------------------------------------------

TEST(SlidingWindow, LimitPerWindow) {
  ManualClock clock;  // 1 h after the epoch: a window boundary for a 10 s window
  SlidingWindow w({.limit = 10, .window = 10s});
  for (int i = 0; i < 10; ++i) {
    const auto d = w.try_acquire(clock.now());
    ASSERT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, static_cast<std::uint64_t>(9 - i));
  }
  auto d = w.try_acquire(clock.now());
  EXPECT_FALSE(d.allowed);
  // Nothing fades inside this window (no previous count): wait for the next window, then for
  // 10 % of it (10 x (1 - t) + 1 <= 10  =>  t >= 0.1).
  EXPECT_EQ(d.retry_after, 11s);
  EXPECT_EQ(d.reset_after, 20s);
}

TEST(SlidingWindow, PreviousWindowFadesLinearly) {
  ManualClock clock;
  SlidingWindow w({.limit = 10, .window = 10s});
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w.try_acquire(clock.now()).allowed);
  clock.advance(10s);  // next window: estimate = 10 x (1 - 0) + 0
  EXPECT_DOUBLE_EQ(w.estimate(clock.now()), 10.0);
  EXPECT_FALSE(w.try_acquire(clock.now()).allowed);
  clock.advance(3s);  // 10 x 0.7 = 7: three more fit
  EXPECT_NEAR(w.estimate(clock.now()), 7.0, 1e-9);
  EXPECT_TRUE(w.try_acquire(clock.now()).allowed);
  EXPECT_TRUE(w.try_acquire(clock.now()).allowed);
  const auto last = w.try_acquire(clock.now());
  EXPECT_TRUE(last.allowed);
  EXPECT_EQ(last.remaining, 0u);
  auto d = w.try_acquire(clock.now());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 1s);  // 10 x (1 - 0.4) + 3 + 1 = 10 at 4 s into the window
  clock.advance(1s);
  EXPECT_TRUE(w.try_acquire(clock.now()).allowed);
  clock.advance(20s);  // two windows later everything is forgotten
  EXPECT_DOUBLE_EQ(w.estimate(clock.now()), 0.0);
}

TEST(SlidingWindow, LongRunRateAndCost) {
  ManualClock clock;
  SlidingWindow w({.limit = 100, .window = 1s});
  int allowed = 0;
  for (int i = 0; i < 100000; ++i) {  // 100 s, one attempt per ms
    allowed += w.try_acquire(clock.now()).allowed;
    clock.advance(1ms);
  }
  EXPECT_NEAR(allowed, 100 * 100, 150);
  SlidingWindow c({.limit = 10, .window = 1s});
  EXPECT_TRUE(c.try_acquire(clock.now(), 10).allowed);
  EXPECT_FALSE(c.try_acquire(clock.now(), 1).allowed);
  EXPECT_EQ(c.try_acquire(clock.now(), 11).retry_after, Duration::max());
}

// ---- LeakyBucket ------------------------------------------------------------------------------

// The shared table decides exactly as the single-key SlidingWindow, key by key.
TEST(SlidingWindowTable, MatchesTheSingleKeyWindow) {
  ManualClock clock;
  const SlidingWindowConfig config{.limit = 20, .window = 10s};
  SlidingWindowTable table(64);
  SlidingWindow a(config), b(config);
  for (int step = 0; step < 400; ++step) {
    const auto cost = static_cast<std::uint32_t>(1 + step % 3);
    const auto expected_a = a.try_acquire(clock.now(), cost);
    const auto got_a = table.acquire(1, config, clock.now(), cost);
    ASSERT_EQ(got_a.allowed, expected_a.allowed) << step;
    EXPECT_EQ(got_a.remaining, expected_a.remaining) << step;
    EXPECT_EQ(got_a.retry_after, expected_a.retry_after) << step;
    if (step % 2) {
      ASSERT_EQ(table.acquire(2, config, clock.now()).allowed, b.try_acquire(clock.now()).allowed);
    }
    clock.advance(std::chrono::milliseconds(137 * (step % 7)));
  }
  EXPECT_EQ(table.counters().evictions, 0u);
}

TEST(SlidingWindowTable, IdleKeysFreeTheirSlots) {
  ManualClock clock;
  const SlidingWindowConfig config{.limit = 2, .window = 1s};
  SlidingWindowTable table(16, 16);  // one probe window for everything
  for (std::uint64_t key = 0; key < 16; ++key) ASSERT_TRUE(table.acquire(key, config, clock.now()).allowed);
  clock.advance(2s);  // every window is two behind: free again, nothing evicted
  for (std::uint64_t key = 100; key < 116; ++key) ASSERT_TRUE(table.acquire(key, config, clock.now()).allowed);
  EXPECT_EQ(table.counters().evictions, 0u);
  EXPECT_TRUE(table.acquire(100, config, clock.now()).allowed);
  EXPECT_FALSE(table.acquire(100, config, clock.now()).allowed);
}

// A key at its limit is not written while refused, so its slot looked "fading" and was the first
// to go when new keys filled the probe window: a flood of fresh keys handed it a new quota.
TEST(SlidingWindowTable, AFloodOfNewKeysNeverEvictsAKeyHeldAtItsLimit) {
  ManualClock clock;
  const SlidingWindowConfig config{.limit = 3, .window = 10s};
  SlidingWindowTable table(16, 16);  // one probe window for everything
  const std::uint64_t blocked = 424242;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(table.acquire(blocked, config, clock.now()).allowed);
  ASSERT_FALSE(table.acquire(blocked, config, clock.now()).allowed);
  for (int step = 0; step < 2; ++step) {
    clock.advance(step == 0 ? 10s : 2s);  // the next window: its count fades from 3
    for (std::uint64_t key = 1; key <= 2000; ++key) table.acquire(key * 7919 + step, config, clock.now());
    EXPECT_GT(table.counters().evictions, 0u);
    EXPECT_FALSE(table.acquire(blocked, config, clock.now()).allowed) << "evicted, its limit reset, at step " << step;
  }
}

TEST(SlidingWindowTable, ALaggingClockCountsIntoTheNewerWindow) {
  ManualClock clock;
  const SlidingWindowConfig config{.limit = 4, .window = 1s};
  SlidingWindowTable table(64);
  const auto before_boundary = clock.now() - 1ms;  // a worker whose reading is a moment old
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(table.acquire(7, config, clock.now()).allowed);  // window N+1 full
  // The lagging worker must neither wipe the newer window nor get a fresh quota from it.
  EXPECT_FALSE(table.acquire(7, config, before_boundary).allowed);
  EXPECT_FALSE(table.acquire(7, config, clock.now()).allowed);
}

TEST(SlidingWindowTable, ThreadsShareOneLimit) {
  ManualClock clock;  // frozen: exactly the limit passes, however many threads try
  const SlidingWindowConfig config{.limit = 500, .window = 60s};
  SlidingWindowTable table(1024);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) allowed += table.acquire(42, config, clock.now()).allowed;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 500);
}

TEST(LeakyBucket, QueueDepthBoundAndDelays) {
  ManualClock clock;
  LeakyBucket b({.rate_per_second = 10, .burst = 3});
  EXPECT_EQ(b.interval(), 100ms);
  for (int i = 0; i < 3; ++i) {
    const auto d = b.try_acquire(clock.now());
    ASSERT_TRUE(d.allowed);
    EXPECT_EQ(d.delay, 100ms * i);  // a shaping caller spaces them one interval apart
    EXPECT_EQ(d.remaining, static_cast<std::uint64_t>(2 - i));
  }
  auto d = b.try_acquire(clock.now());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 100ms);
  EXPECT_EQ(d.reset_after, 300ms);
  clock.advance(100ms);
  d = b.try_acquire(clock.now());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay, 200ms);
  EXPECT_EQ(d.remaining, 0u);
}

TEST(LeakyBucket, SmoothRateAndCost) {
  ManualClock clock;
  LeakyBucket b({.rate_per_second = 50, .burst = 1});
  int allowed = 0;
  for (int i = 0; i < 10000; ++i) {  // 10 s, one attempt per ms, no burst: exactly one per 20 ms
    allowed += b.try_acquire(clock.now()).allowed;
    clock.advance(1ms);
  }
  EXPECT_EQ(allowed, 500);
  LeakyBucket c({.rate_per_second = 10, .burst = 5});
  EXPECT_TRUE(c.try_acquire(clock.now(), 5).allowed);
  auto d = c.try_acquire(clock.now(), 2);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 200ms);
  EXPECT_EQ(c.try_acquire(clock.now(), 6).retry_after, Duration::max());
}

// ---- LimiterTable (single thread) -------------------------------------------------------------

TEST(LimiterTable, GcraPerKey) {
  ManualClock clock;
  LimiterTable t(1024);
  const GcraPolicy p(10, 3);  // 10/s, burst 3
  EXPECT_EQ(p.interval, 25000);  // 100 ms in 4 µs units
  const std::uint64_t a = hash64("10.0.0.1"), b = hash64("10.0.0.2");
  for (int i = 0; i < 3; ++i) {
    const auto d = t.acquire(a, p, clock.now());
    ASSERT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, static_cast<std::uint64_t>(2 - i));
    EXPECT_EQ(d.delay, 100ms * i);
  }
  auto d = t.acquire(a, p, clock.now());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 100ms);
  EXPECT_EQ(d.reset_after, 300ms);
  EXPECT_TRUE(t.acquire(b, p, clock.now()).allowed);  // another key has its own quota
  EXPECT_FALSE(t.peek(a, p, clock.now()).allowed);
  EXPECT_EQ(t.peek(b, p, clock.now()).remaining, 2u);
  clock.advance(100ms);
  EXPECT_TRUE(t.acquire(a, p, clock.now()).allowed);
  EXPECT_FALSE(t.acquire(a, p, clock.now()).allowed);
  EXPECT_EQ(t.acquire(a, p, clock.now(), 4).retry_after, Duration::max());
  EXPECT_EQ(t.live_slots(clock.now()), 1u);  // b's single request has drained: its slot is free
  clock.advance(1s);
  EXPECT_EQ(t.live_slots(clock.now()), 0u);  // idle keys are free again
  EXPECT_EQ(t.peek(a, p, clock.now()).remaining, 3u);
}

TEST(LimiterTable, ARefundGivesBackWhatAnAcquireTook) {
  ManualClock clock;
  LimiterTable t(1024);
  const GcraPolicy p(10, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(t.acquire(7, p, clock.now()).allowed);
  EXPECT_FALSE(t.acquire(7, p, clock.now()).allowed);
  t.refund(7, p, clock.now());
  EXPECT_EQ(t.peek(7, p, clock.now()).remaining, 1u);
  EXPECT_TRUE(t.acquire(7, p, clock.now()).allowed);
  // Never below a full quota: refunds beyond what was taken give nothing more.
  for (int i = 0; i < 10; ++i) t.refund(7, p, clock.now());
  EXPECT_EQ(t.peek(7, p, clock.now()).remaining, 3u);
  t.refund(8, p, clock.now());  // a key never seen: nothing happens
  EXPECT_EQ(t.live_slots(clock.now()), 0u);
}

TEST(SlidingWindowTable, ARefundGivesBackWhatAnAcquireCounted) {
  ManualClock clock;
  const SlidingWindowConfig config{.limit = 2, .window = 10s};
  SlidingWindowTable table(64);
  ASSERT_TRUE(table.acquire(1, config, clock.now()).allowed);
  ASSERT_TRUE(table.acquire(1, config, clock.now()).allowed);
  EXPECT_FALSE(table.acquire(1, config, clock.now()).allowed);
  table.refund(1, config, clock.now());
  EXPECT_TRUE(table.acquire(1, config, clock.now()).allowed);
  EXPECT_FALSE(table.acquire(1, config, clock.now()).allowed);
  for (int i = 0; i < 5; ++i) table.refund(1, config, clock.now());
  EXPECT_TRUE(table.acquire(1, config, clock.now(), 2).allowed);  // back to zero, never below
  EXPECT_FALSE(table.acquire(1, config, clock.now()).allowed);
}

TEST(LimiterTable, CollidingKeysProbeAndReclaim) {
  ManualClock clock;
  LimiterTable t(4, 4);  // every key collides
  EXPECT_EQ(t.capacity(), 4u);
  const GcraPolicy p(1, 2);  // 1/s, burst 2
  for (std::uint64_t k = 1; k <= 4; ++k) {
    ASSERT_TRUE(t.acquire(k, p, clock.now()).allowed);
    ASSERT_TRUE(t.acquire(k, p, clock.now()).allowed);
    ASSERT_FALSE(t.acquire(k, p, clock.now()).allowed);
  }
  EXPECT_EQ(t.live_slots(clock.now()), 4u);
  EXPECT_EQ(t.counters().evictions, 0u);
  clock.advance(2s);  // every key fully recovered: all four slots are free, nothing evicted
  for (std::uint64_t k = 5; k <= 8; ++k) ASSERT_TRUE(t.acquire(k, p, clock.now()).allowed);
  EXPECT_EQ(t.counters().evictions, 0u);
  EXPECT_EQ(t.live_slots(clock.now()), 4u);
}

TEST(LimiterTable, FullWindowEvictsTheKeyClosestToRecovery) {
  ManualClock clock;
  LimiterTable t(4, 4);
  const GcraPolicy p(1, 10);
  for (int i = 0; i < 10; ++i) t.acquire(1, p, clock.now());  // key 1: deep in debt (10 s)
  t.acquire(2, p, clock.now());
  t.acquire(3, p, clock.now());
  t.acquire(4, p, clock.now());
  clock.advance(100ms);
  t.acquire(5, p, clock.now());  // evicts one of 2, 3, 4 (1 s of debt), never key 1
  EXPECT_EQ(t.counters().evictions, 1u);
  EXPECT_FALSE(t.acquire(1, p, clock.now()).allowed);
  EXPECT_EQ(t.peek(5, p, clock.now()).remaining, 9u);
}

TEST(LimiterTable, FloodOfDistinctKeysKeepsConstantMemoryAndTheLimit) {
  ManualClock clock;
  LimiterTable t(4096);
  const GcraPolicy p(100, 10);  // 100/s, burst 10
  const std::uint64_t abuser = hash64("abuser");
  int abuser_allowed = 0;
  for (int i = 0; i < 200000; ++i) {  // 2 s: a new key every 10 µs, the abuser every 100 µs
    t.acquire(hash64("flood-" + std::to_string(i)), p, clock.now());
    if (i % 10 == 0) abuser_allowed += t.acquire(abuser, p, clock.now()).allowed;
    clock.advance(10us);
  }
  // Each flood key holds its slot for one interval (10 ms): ~1000 live, far below the capacity.
  EXPECT_LT(t.live_slots(clock.now()), 1500u);
  EXPECT_EQ(t.capacity(), 4096u);
  EXPECT_LE(abuser_allowed, 10 + 200 + 1);
  EXPECT_GE(abuser_allowed, 10 + 200 - 1);
}

TEST(LimiterTable, TimeWrapsAroundThePackedField) {
  LimiterTable t(64);
  const GcraPolicy p(10, 2);
  // 2^44 units of 4 µs after the epoch, the packed time wraps to 0: the state must carry over.
  const TimePoint wrap = TimePoint{} + std::chrono::nanoseconds((std::int64_t{1} << 44) * GcraPolicy::kUnitNs);
  const TimePoint before = wrap - 50ms;
  EXPECT_TRUE(t.acquire(7, p, before).allowed);
  EXPECT_TRUE(t.acquire(7, p, before).allowed);
  EXPECT_FALSE(t.acquire(7, p, before).allowed);
  EXPECT_FALSE(t.acquire(7, p, wrap).allowed);  // 50 ms later: still 150 ms of debt beyond the burst
  EXPECT_TRUE(t.acquire(7, p, wrap + 50ms).allowed);
  EXPECT_FALSE(t.acquire(7, p, wrap + 50ms).allowed);
}

// A limit keyed on the manifest or the path counts every client of a service: rates of 100 000/s
// and more are real. In 4 µs units they cannot be whole: 100 000/s is 2.5 units, 1 000 000/s a
// quarter of one. Offered far more than the rate for 100 ms, a key gets the rate (and its burst).
TEST(LimiterTable, HighRatesHoldOnAverageThoughAnIntervalIsNotAWholeUnit) {
  for (const double rate : {30000.0, 100000.0, 150000.0, 200000.0, 300000.0, 900000.0, 1000000.0}) {
    LimiterTable t(64);
    const GcraPolicy p(rate, 10);
    const TimePoint start = TimePoint{} + std::chrono::hours(1);
    std::int64_t allowed = 0;
    for (std::int64_t ns = 0; ns < 100'000'000; ns += 100)  // one request every 100 ns: 10 000 000/s
      allowed += t.acquire(1, p, start + std::chrono::nanoseconds(ns)).allowed ? 1 : 0;
    const double expected = rate * 0.1 + 10;
    // The fraction is drawn per request: over n requests the units spent vary by sqrt(n f (1-f)).
    // Six of those (rounding to whole units was off by 4 % at 30 000/s, 17 % at 100 000/s, 75 % at
    // 1 000 000/s; six deviations are 0.6 %, 1.2 % and 3.3 % of those), plus a little for the burst.
    const double units = 1e9 / rate / GcraPolicy::kUnitNs;
    const double f = units - std::floor(units);
    const double spread = std::sqrt(expected * f * (1 - f)) / units;
    EXPECT_NEAR(static_cast<double>(allowed), expected, 6 * spread + 0.002 * expected) << rate << "/s";
  }
}

TEST(LimiterTable, TheFractionAddsAUnitBelowItsThresholdAndEveryBurstFits) {
  const GcraPolicy p(100000, 10);  // 2.5 units
  ASSERT_EQ(p.interval, 2);
  const std::uint64_t part = p.interval_fraction;
  EXPECT_EQ(p.increment(1, (part - 1) << 32).move, 3);
  EXPECT_EQ(p.increment(1, part << 32).move, 2);
  EXPECT_EQ(p.increment(1, 0).room, 3);
  EXPECT_EQ(p.increment(2, 0).room, 5);  // 2 x 2.5 is whole: nothing drawn
  EXPECT_EQ(p.increment(2, 0).move, 5);
  for (const double rate : {1.0, 3.0, 7.0, 30000.0, 99999.0, 100000.0, 333333.0, 999999.0, 1000000.0})
    for (const std::uint32_t burst : {1u, 2u, 3u, 10u, 1000u, 1000000u}) {
      const GcraPolicy q(rate, burst);
      EXPECT_LE(q.increment(burst, 0).room, q.tolerance) << rate << "/s burst " << burst;  // never refused forever
      LimiterTable t(64);
      const auto first = t.acquire(1, q, TimePoint{} + std::chrono::hours(1));
      EXPECT_TRUE(first.allowed);
      // RateLimit-Remaining never above RateLimit-Limit (1 000 000/s, burst 10 said 12).
      EXPECT_LE(first.remaining, burst) << rate << "/s burst " << burst;
    }
}

TEST(LimiterTable, ARefundWithTheSameDrawGivesBackExactlyWhatWasTaken) {
  const GcraPolicy p(1000000, 100);  // a quarter of a unit per request
  LimiterTable t(64);
  const TimePoint now = TimePoint{} + std::chrono::hours(1);
  for (std::uint64_t draw = 1; draw < 2000; ++draw) {
    const std::uint64_t d = resilience::mix64(draw) | 1;
    ASSERT_TRUE(t.acquire(9, p, now, 1, d).allowed);
    t.refund(9, p, now, 1, d);
  }
  // Two thousand requests taken and given back: the key is as fresh as one never seen.
  EXPECT_EQ(t.peek(9, p, now).remaining, 100u);
  EXPECT_EQ(t.live_slots(now), 0u);
}

TEST(LimiterTable, PolicyClamping) {
  const GcraPolicy fast(1e9, 5);  // a quarter-thousandth of a unit per request
  EXPECT_EQ(fast.interval, 0);
  EXPECT_GT(fast.interval_fraction, 0u);
  EXPECT_EQ(fast.tolerance, 1);  // rounded up: a cost of `burst` always fits
  const GcraPolicy slow(1e-12, 100);
  EXPECT_LE(slow.tolerance, GcraPolicy::kMaxTolerance);
  const GcraPolicy zero_burst(10, 0);
  EXPECT_EQ(zero_burst.tolerance, zero_burst.interval);  // burst 0 is treated as 1
}

// ---- LimiterTable across threads --------------------------------------------------------------
// Bounded loops, no sleeps: time is a shared manual counter that the threads advance. The threads
// start together (a spin gate), so their compare-and-swaps really race.

template <class Body>
void run_threads(int count, Body body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int k = 0; k < count; ++k) {
    threads.emplace_back([&, k] {
      ++ready;
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      body(k);
    });
  }
  while (ready.load() < count) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
}

TEST(LimiterTableThreads, FrozenTimeAdmitsExactlyTheBurst) {
  LimiterTable t(1024);
  const GcraPolicy p(100, 50);
  const TimePoint now = TimePoint{} + 1h;
  std::atomic<int> allowed{0};
  run_threads(4, [&](int) {
    for (int i = 0; i < 20000; ++i) allowed += t.acquire(42, p, now).allowed;
  });
  EXPECT_EQ(allowed.load(), 50);
  EXPECT_EQ(t.counters().contention, 0u);
}

TEST(LimiterTableThreads, LimitHoldsWhileTimeMoves) {
  // 4 threads hammer one key for 2 s of manual time (10 µs per tick, ticks shared by all threads).
  // Bound: burst + rate x elapsed (+1 for the tick in flight); a thread holding a stale reading of
  // the clock can only be more restricted, so the upper bound is strict.
  LimiterTable t(1024);
  const GcraPolicy p(1000, 100);
  const TimePoint base = TimePoint{} + 1h;
  std::atomic<std::int64_t> tick{0};
  std::atomic<int> allowed{0};
  constexpr int kPerThread = 50000;
  run_threads(4, [&](int) {
    for (int i = 0; i < kPerThread; ++i) {
      const TimePoint now = base + tick.fetch_add(1) * 10us;
      allowed += t.acquire(7, p, now).allowed;
    }
  });
  const auto elapsed = tick.load() * 10us;  // 2 s
  const int bound = 100 + static_cast<int>(elapsed / 1ms) + 1;
  EXPECT_LE(allowed.load(), bound);
  EXPECT_GE(allowed.load(), bound * 98 / 100);  // and nearly all of it is used
}

TEST(LimiterTableThreads, ManySharedKeysEachHoldTheirLimit) {
  LimiterTable t(8192);
  const GcraPolicy p(10, 20);
  const TimePoint now = TimePoint{} + 1h;
  constexpr int kKeys = 1000;
  std::vector<std::atomic<int>> per_key(kKeys);
  run_threads(4, [&](int k) {
    for (int round = 0; round < 10; ++round) {
      for (int i = 0; i < kKeys; ++i) {
        const int key = (i * 7 + k * 13 + round) % kKeys;  // threads interleave differently
        per_key[key] += t.acquire(hash_combine(1, static_cast<std::uint64_t>(key)), p, now).allowed;
      }
    }
  });
  for (int i = 0; i < kKeys; ++i) ASSERT_EQ(per_key[i].load(), 20) << "key " << i;
  EXPECT_EQ(t.counters().evictions, 0u);
}

}  // namespace
}  // namespace frontdoor::resilience
