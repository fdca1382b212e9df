#pragma once
// A steady-clock reading for deadlines and idle stamps, where a few milliseconds do not matter but
// the cost of reading the clock does: a keep-alive request sets about six of them.
#include <time.h>

#include <chrono>

namespace frontdoor::core {

// Never earlier than std::chrono::steady_clock::now() (CLOCK_MONOTONIC), at most one kernel tick
// (1–4 ms) later: CLOCK_MONOTONIC_COARSE is the time at the last tick, so one tick is added. A
// deadline built on it fires late by up to a tick, never early; an idle stamp makes a connection
// look younger, never older. It costs a memory read (3 ns here) where CLOCK_MONOTONIC reads and
// scales the TSC (25 ns).
inline std::chrono::steady_clock::time_point coarse_now_not_early() noexcept {
  static const std::chrono::nanoseconds tick = [] {
    timespec res{};
    ::clock_getres(CLOCK_MONOTONIC_COARSE, &res);
    return std::chrono::seconds(res.tv_sec) + std::chrono::nanoseconds(res.tv_nsec);
  }();
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const auto since_boot = std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec) + tick;
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(since_boot));
}

}  // namespace frontdoor::core
