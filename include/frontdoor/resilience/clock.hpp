#pragma once
// The time the resilience algorithms see. None of them reads a clock: every call that depends on time
// takes `TimePoint now`, so tests drive them with a manual clock and production passes
// Clock::now() (or the worker's cached tick time).
#include <chrono>

namespace frontdoor::resilience {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

}  // namespace frontdoor::resilience
