#pragma once
// A manual clock for the resilience unit tests: time moves only when the test says so.
#include "frontdoor/resilience/clock.hpp"

namespace frontdoor::resilience::testing {

using namespace std::chrono_literals;

struct ManualClock {
  TimePoint t = TimePoint{} + std::chrono::hours(1);  // away from the epoch, like a real steady clock
  TimePoint now() const noexcept { return t; }
  void advance(Duration d) noexcept { t += d; }
};

}  // namespace frontdoor::resilience::testing
