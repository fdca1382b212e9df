// The coarse clock deadlines and idle stamps are built on: never early, at most a tick late.
#include "frontdoor/core/coarse_clock.hpp"

#include <gtest/gtest.h>

namespace frontdoor::core {
namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;

TEST(CoarseClock, NeverEarlierThanTheSteadyClockAndAtMostATickLater) {
  // The bare coarse reading lags the steady clock by up to a tick (4 ms here): most of these reads
  // would be early without the added tick. The 1 ms margin covers a tick that a preempted vCPU
  // delivers late.
  int early = 0;
  int late = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto before = steady_clock::now();
    const auto coarse = coarse_now_not_early();
    const auto after = steady_clock::now();
    if (coarse + 1ms < before) ++early;
    if (coarse > after + 11ms) ++late;  // a tick is at most 10 ms (HZ=100)
  }
  EXPECT_EQ(early, 0);
  EXPECT_EQ(late, 0);
}

}  // namespace
}  // namespace frontdoor::core
