#include "frontdoor/resilience/outlier_detector.hpp"

#include <gtest/gtest.h>

#include "unit/resilience/manual_clock.hpp"

namespace frontdoor::resilience {
namespace {

using testing::ManualClock;
using namespace std::chrono_literals;

OutlierDetectorConfig config(std::uint32_t n, std::uint32_t percent = 50) {
  return {.consecutive_failures = n, .base_ejection_time = 30s, .max_ejection_time = 100s,
          .max_ejection_percent = percent};
}

void fail(OutlierDetector& d, std::size_t i, int times, TimePoint now) {
  for (int k = 0; k < times; ++k) d.on_result(i, true, now);
}

TEST(OutlierDetector, EjectsAfterConsecutiveFailures) {
  ManualClock clock;
  OutlierDetector d(config(3), 4);
  fail(d, 1, 2, clock.now());
  d.on_result(1, false, clock.now());  // success resets the run
  fail(d, 1, 2, clock.now());
  EXPECT_FALSE(d.ejected(1, clock.now()));
  fail(d, 1, 1, clock.now());
  EXPECT_TRUE(d.ejected(1, clock.now()));
  EXPECT_FALSE(d.ejected(0, clock.now()));
  EXPECT_EQ(d.ejected_count(clock.now()), 1u);
  EXPECT_EQ(d.counters().ejections, 1u);
  EXPECT_EQ(d.ejected_until(1, clock.now()), clock.now() + 30s);
  EXPECT_EQ(d.ejected_until(0, clock.now()), TimePoint{});
}

TEST(OutlierDetector, ReturnsWhenTimeHasPassed) {
  ManualClock clock;
  OutlierDetector d(config(1), 4);
  fail(d, 2, 1, clock.now());
  EXPECT_TRUE(d.ejected(2, clock.now() + 29s));
  EXPECT_FALSE(d.ejected(2, clock.now() + 30s));
  EXPECT_EQ(d.ejected_count(clock.now() + 30s), 0u);
  EXPECT_EQ(d.counters().unejections, 1u);
}

TEST(OutlierDetector, EjectionTimeGrowsWithRepeatsAndIsCapped) {
  ManualClock clock;
  OutlierDetector d(config(1), 2);
  const Duration expected[] = {30s, 60s, 90s, 100s, 100s};
  for (Duration want : expected) {
    fail(d, 0, 1, clock.now());
    ASSERT_TRUE(d.ejected(0, clock.now()));
    EXPECT_EQ(d.ejected_until(0, clock.now()) - clock.now(), want);
    clock.t = d.ejected_until(0, clock.now());  // back in, and fails again at once
    ASSERT_FALSE(d.ejected(0, clock.now()));
  }
}

TEST(OutlierDetector, MultiplierIsForgivenAfterHealthyPeriods) {
  ManualClock clock;
  OutlierDetector d(config(1), 2);
  fail(d, 0, 1, clock.now());  // 30 s
  clock.advance(30s);
  fail(d, 0, 1, clock.now());  // 60 s (multiplier 2)
  clock.advance(60s);
  ASSERT_FALSE(d.ejected(0, clock.now()));
  clock.advance(30s);           // one healthy period: multiplier 2 -> 1
  fail(d, 0, 1, clock.now());  // then +1 = 2 -> 60 s
  EXPECT_EQ(d.ejected_until(0, clock.now()) - clock.now(), 60s);
  clock.advance(60s + 10min);   // long healthy: fully forgiven
  fail(d, 0, 1, clock.now());
  EXPECT_EQ(d.ejected_until(0, clock.now()) - clock.now(), 30s);
}

TEST(OutlierDetector, NeverEjectsBeyondMaxPercent) {
  ManualClock clock;
  OutlierDetector d(config(2, 30), 10);  // at most 3 of 10
  EXPECT_EQ(d.max_ejected(), 3u);
  for (std::size_t i = 0; i < 10; ++i) fail(d, i, 2, clock.now());
  EXPECT_EQ(d.ejected_count(clock.now()), 3u);
  EXPECT_EQ(d.counters().ejections, 3u);
  EXPECT_EQ(d.counters().overflow, 7u);
  EXPECT_TRUE(d.ejected(0, clock.now()));
  EXPECT_TRUE(d.ejected(2, clock.now()));
  EXPECT_FALSE(d.ejected(3, clock.now()));
  // When room frees up, the next failure of an endpoint whose run reached the threshold ejects it.
  clock.advance(30s);
  EXPECT_EQ(d.ejected_count(clock.now()), 0u);
  fail(d, 5, 1, clock.now());
  EXPECT_TRUE(d.ejected(5, clock.now()));
}

TEST(OutlierDetector, SmallPoolsAndZeroPercent) {
  ManualClock clock;
  OutlierDetector two(config(1, 50), 2);
  fail(two, 0, 1, clock.now());
  fail(two, 1, 1, clock.now());
  EXPECT_TRUE(two.ejected(0, clock.now()));
  EXPECT_FALSE(two.ejected(1, clock.now()));  // the last one is never ejected at 50 %
  OutlierDetector one(config(1, 50), 1);
  fail(one, 0, 5, clock.now());
  EXPECT_FALSE(one.ejected(0, clock.now()));
  OutlierDetector none(config(1, 0), 10);
  fail(none, 0, 5, clock.now());
  EXPECT_FALSE(none.ejected(0, clock.now()));
  OutlierDetector all(config(1, 100), 3);
  for (std::size_t i = 0; i < 3; ++i) fail(all, i, 1, clock.now());
  EXPECT_EQ(all.ejected_count(clock.now()), 3u);
}

TEST(OutlierDetector, ResultsWhileEjectedAreIgnoredAndRunRestartsOnReturn) {
  ManualClock clock;
  OutlierDetector d(config(3), 4);
  fail(d, 0, 3, clock.now());
  fail(d, 0, 10, clock.now());  // stragglers
  EXPECT_EQ(d.counters().ejections, 1u);
  clock.advance(30s);
  fail(d, 0, 2, clock.now());
  EXPECT_FALSE(d.ejected(0, clock.now()));  // needs a fresh run of 3
  fail(d, 0, 1, clock.now());
  EXPECT_TRUE(d.ejected(0, clock.now()));
}

TEST(OutlierDetector, DisabledAndOutOfRange) {
  ManualClock clock;
  OutlierDetector d(config(0), 4);
  fail(d, 0, 100, clock.now());
  EXPECT_FALSE(d.ejected(0, clock.now()));
  d.on_result(99, true, clock.now());
  EXPECT_FALSE(d.ejected(99, clock.now()));
  EXPECT_FALSE(d.eject(99, clock.now()));
}

TEST(OutlierDetector, ExternalEjectRespectsPercent) {
  ManualClock clock;
  OutlierDetector d(config(0, 50), 4);  // passive detection off, fan-out still works
  EXPECT_TRUE(d.eject(0, clock.now()));
  EXPECT_TRUE(d.eject(0, clock.now()));  // already ejected: no second ejection
  EXPECT_EQ(d.counters().ejections, 1u);
  EXPECT_TRUE(d.eject(1, clock.now()));
  EXPECT_FALSE(d.eject(2, clock.now()));
  EXPECT_EQ(d.ejected_count(clock.now()), 2u);
}

}  // namespace
}  // namespace frontdoor::resilience
