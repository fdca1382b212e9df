#include "frontdoor/resilience/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include "frontdoor/resilience/rolling_window.hpp"
#include "unit/resilience/manual_clock.hpp"

namespace frontdoor::resilience {
namespace {

using testing::ManualClock;
using namespace std::chrono_literals;
using State = CircuitBreaker::State;

TEST(RollingWindowBreaker, SumsAndExpiresWholeBuckets) {
  ManualClock clock;
  RollingWindow w(10s, 10);
  w.add(clock.now(), 1, 0);
  clock.advance(1s);
  w.add(clock.now(), 0, 2);
  EXPECT_EQ(w.totals(clock.now()).first, 1u);
  EXPECT_EQ(w.totals(clock.now()).second, 2u);
  clock.advance(9s);  // the first bucket (t=0s) has left the window, the second (t=1s) has not
  EXPECT_EQ(w.totals(clock.now()).first, 0u);
  EXPECT_EQ(w.totals(clock.now()).second, 2u);
  clock.advance(1s);
  EXPECT_EQ(w.totals(clock.now()).second, 0u);
  w.add(clock.now(), 3, 3);
  clock.advance(1h);  // a long idle period clears everything at once
  EXPECT_EQ(w.totals(clock.now()).first, 0u);
  EXPECT_EQ(w.totals(clock.now()).second, 0u);
}

TEST(RollingWindowBreaker, ClockGoingBackwardsCountsInNewestBucket) {
  ManualClock clock;
  RollingWindow w(10s, 10);
  w.add(clock.now(), 1, 0);
  w.add(clock.now() - 5s, 1, 0);
  EXPECT_EQ(w.totals(clock.now()).first, 2u);
}

TEST(RollingWindowBreaker, WorksBeforeTheClockEpoch) {
  RollingWindow w(10s, 10);
  TimePoint t = TimePoint{} - 25s;
  w.add(t, 1, 1);
  w.add(t + 3s, 1, 1);
  EXPECT_EQ(w.totals(t + 3s).first, 2u);
  EXPECT_EQ(w.totals(t + 10s).first, 1u);
  EXPECT_EQ(w.totals(t + 13s).first, 0u);
}

TEST(CircuitBreaker, ClosedAdmitsEverything) {
  ManualClock clock;
  CircuitBreaker b;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(b.allow(clock.now()));
    b.on_success(clock.now());
  }
  EXPECT_EQ(b.state(clock.now()), State::closed);
  EXPECT_EQ(b.counters().successes, 100u);
  EXPECT_EQ(b.counters().rejected, 0u);
  EXPECT_EQ(b.half_open_at(), TimePoint{});
}

TEST(CircuitBreaker, OpensAfterConsecutiveFailures) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 3, .open_duration = 5s});
  b.on_failure(clock.now());
  b.on_failure(clock.now());
  b.on_success(clock.now());  // resets the run
  b.on_failure(clock.now());
  b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::closed);
  b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::open);
  EXPECT_EQ(b.counters().opened, 1u);
  EXPECT_EQ(b.half_open_at(), clock.now() + 5s);
  EXPECT_FALSE(b.allow(clock.now()));
  EXPECT_FALSE(b.allow(clock.now() + 4999ms));
  EXPECT_EQ(b.counters().rejected, 2u);
}

TEST(CircuitBreaker, ConsecutiveZeroDisables) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 0});
  for (int i = 0; i < 1000; ++i) b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::closed);
}

TEST(CircuitBreaker, ReconfiguredInItsCourse) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 0});
  // Turned on: the next failures count under the new settings.
  b.reconfigure({.consecutive_failures = 2, .open_duration = 60s});
  b.on_failure(clock.now());
  b.on_failure(clock.now());
  ASSERT_EQ(b.state(clock.now()), State::open);
  EXPECT_EQ(b.half_open_at(), clock.now() + 60s);
  // A shorter open_duration counts from when it opened.
  clock.advance(10s);
  b.reconfigure({.consecutive_failures = 2, .open_duration = 15s});
  EXPECT_EQ(b.half_open_at(), clock.now() + 5s);
  EXPECT_EQ(b.counters().opened, 1u);
  // Turned off while open: it lets traffic through at once.
  b.reconfigure({.consecutive_failures = 0});
  EXPECT_EQ(b.state(clock.now()), State::closed);
  EXPECT_TRUE(b.allow(clock.now()));
  for (int i = 0; i < 100; ++i) b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::closed);
  // The same settings again change nothing.
  b.reconfigure({.consecutive_failures = 3});
  b.on_failure(clock.now());
  b.on_failure(clock.now());
  b.reconfigure({.consecutive_failures = 3});
  b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::open);
}

TEST(CircuitBreaker, HalfOpenAfterRecoveryTimeoutThenClosesOnProbeSuccess) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 1, .open_duration = 5s});
  b.on_failure(clock.now());
  clock.advance(5s);
  EXPECT_EQ(b.state(clock.now()), State::half_open);
  EXPECT_EQ(b.half_open_at(), TimePoint{});
  ASSERT_TRUE(b.allow(clock.now()));   // the probe
  EXPECT_FALSE(b.allow(clock.now()));  // one probe at a time by default
  EXPECT_EQ(b.probes_in_flight(), 1u);
  b.on_success(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::closed);
  EXPECT_EQ(b.counters().closed, 1u);
  EXPECT_TRUE(b.allow(clock.now()));
  EXPECT_TRUE(b.allow(clock.now()));
}

TEST(CircuitBreaker, HalfOpenProbeFailureReopensWithFreshTimeout) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 1, .open_duration = 5s});
  b.on_failure(clock.now());
  clock.advance(7s);
  ASSERT_TRUE(b.allow(clock.now()));
  clock.advance(1s);
  b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::open);
  EXPECT_EQ(b.counters().opened, 2u);
  EXPECT_EQ(b.half_open_at(), clock.now() + 5s);
  EXPECT_FALSE(b.allow(clock.now() + 4s));
  EXPECT_TRUE(b.allow(clock.now() + 5s));
}

TEST(CircuitBreaker, BoundedProbesAndSeveralSuccessesToClose) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 1,
                    .open_duration = 1s,
                    .half_open_max_probes = 2,
                    .half_open_successes_to_close = 3});
  b.on_failure(clock.now());
  clock.advance(1s);
  EXPECT_TRUE(b.allow(clock.now()));
  EXPECT_TRUE(b.allow(clock.now()));
  EXPECT_FALSE(b.allow(clock.now()));
  b.on_success(clock.now());  // 1 success, frees a slot
  EXPECT_EQ(b.state(clock.now()), State::half_open);
  EXPECT_TRUE(b.allow(clock.now()));
  EXPECT_FALSE(b.allow(clock.now()));
  b.on_success(clock.now());  // 2
  b.on_success(clock.now());  // 3: closes
  EXPECT_EQ(b.state(clock.now()), State::closed);
}

TEST(CircuitBreaker, CancelledProbeFreesItsSlotWithoutVerdict) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 1, .open_duration = 1s});
  b.on_failure(clock.now());
  clock.advance(1s);
  ASSERT_TRUE(b.allow(clock.now()));
  EXPECT_FALSE(b.allow(clock.now()));
  b.on_cancelled();
  EXPECT_EQ(b.state(clock.now()), State::half_open);
  EXPECT_EQ(b.probes_in_flight(), 0u);
  EXPECT_TRUE(b.allow(clock.now()));
  b.on_cancelled();
  b.on_cancelled();  // more cancels than probes: no underflow
  EXPECT_EQ(b.probes_in_flight(), 0u);
}

TEST(CircuitBreaker, StragglersWhileOpenOrWithoutProbeAreIgnored) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 2, .open_duration = 5s});
  ASSERT_TRUE(b.allow(clock.now()));  // three requests in flight
  ASSERT_TRUE(b.allow(clock.now()));
  ASSERT_TRUE(b.allow(clock.now()));
  ASSERT_TRUE(b.allow(clock.now()));
  b.on_failure(clock.now());
  b.on_failure(clock.now());  // opens
  b.on_success(clock.now());  // straggler while open: ignored
  EXPECT_EQ(b.state(clock.now()), State::open);
  clock.advance(5s);
  b.on_success(clock.now());  // straggler while half-open with no probe out: does not close
  EXPECT_EQ(b.state(clock.now()), State::half_open);
  b.on_failure(clock.now());  // nor reopen
  EXPECT_EQ(b.state(clock.now()), State::half_open);
  EXPECT_EQ(b.counters().opened, 1u);
}

TEST(CircuitBreaker, FailureRateNeedsMinRequests) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 0,
                    .failure_rate_threshold = 0.5,
                    .window = 10s,
                    .window_buckets = 10,
                    .min_requests = 10});
  for (int i = 0; i < 4; ++i) b.on_success(clock.now());
  for (int i = 0; i < 5; ++i) b.on_failure(clock.now());  // 5/9 failures but only 9 results
  EXPECT_EQ(b.state(clock.now()), State::closed);
  b.on_failure(clock.now());  // 6/10 >= 0.5
  EXPECT_EQ(b.state(clock.now()), State::open);
}

TEST(CircuitBreaker, FailureRateBelowThresholdStaysClosed) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 0, .failure_rate_threshold = 0.5, .min_requests = 10});
  for (int i = 0; i < 1000; ++i) {
    if (i % 3 == 0) b.on_failure(clock.now()); else b.on_success(clock.now());  // 33% failures
    clock.advance(7ms);
  }
  EXPECT_EQ(b.state(clock.now()), State::closed);
}

TEST(CircuitBreaker, FailureRateForgetsOldResults) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 0,
                    .failure_rate_threshold = 0.5,
                    .window = 10s,
                    .window_buckets = 10,
                    .min_requests = 10});
  for (int i = 0; i < 9; ++i) b.on_failure(clock.now());  // not enough results yet
  clock.advance(11s);                                     // ... and now forgotten
  for (int i = 0; i < 9; ++i) b.on_success(clock.now());
  b.on_failure(clock.now());  // 1/10
  EXPECT_EQ(b.state(clock.now()), State::closed);
}

TEST(CircuitBreaker, ClosingClearsHistory) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 3, .open_duration = 1s});
  b.on_failure(clock.now());
  b.on_failure(clock.now());
  b.on_failure(clock.now());
  clock.advance(1s);
  ASSERT_TRUE(b.allow(clock.now()));
  b.on_success(clock.now());
  ASSERT_EQ(b.state(clock.now()), State::closed);
  b.on_failure(clock.now());
  b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::closed);  // needs three new failures
  b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::open);
}

TEST(CircuitBreaker, OpensWhenAPeerOpensButKeepsItsOwnProbe) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 3, .open_duration = 2s});
  b.open_from_peer(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::open);
  EXPECT_FALSE(b.allow(clock.now()));
  EXPECT_EQ(b.counters().opened, 1u);
  clock.advance(2s);
  ASSERT_TRUE(b.allow(clock.now()));  // half-open: its own probe
  b.open_from_peer(clock.now());      // a peer's news does not cut a probe short
  EXPECT_EQ(b.state(clock.now()), State::half_open);
  b.on_success(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::closed);
}

TEST(CircuitBreaker, ZeroOpenDurationGoesStraightToHalfOpen) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 1, .open_duration = 0s});
  b.on_failure(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::half_open);
}

TEST(CircuitBreaker, InvalidConfigIsClamped) {
  ManualClock clock;
  CircuitBreaker b({.consecutive_failures = 1, .open_duration = 1s, .half_open_max_probes = 0,
                    .half_open_successes_to_close = 0});
  EXPECT_EQ(b.config().half_open_max_probes, 1u);
  EXPECT_EQ(b.config().half_open_successes_to_close, 1u);
  b.on_failure(clock.now());
  clock.advance(1s);
  EXPECT_TRUE(b.allow(clock.now()));
  b.on_success(clock.now());
  EXPECT_EQ(b.state(clock.now()), State::closed);
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_STREQ(to_string(State::closed), "closed");
  EXPECT_STREQ(to_string(State::open), "open");
  EXPECT_STREQ(to_string(State::half_open), "half_open");
}

}  // namespace
}  // namespace frontdoor::resilience
