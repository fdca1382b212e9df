#pragma once
// CircuitBreaker: a pure closed / open / half-open state machine for one upstream endpoint.
//
//   closed    --(N consecutive failures, or failure rate >= threshold over the window
//                with at least min_requests results)-->                          open
//   open      --(open_duration elapsed; noticed lazily by allow/state)-->         half_open
//   half_open --(half_open_successes_to_close probe successes)-->                 closed
//   half_open --(any probe failure)-->                                            open (again)
//
// The caller decides what a failure is (connect error, timeout, 5xx; never a client hanging up) and
// must report exactly one of on_success / on_failure / on_cancelled for every request allow() admitted.
// Results that arrive while open (requests admitted before it opened) are ignored; while half-open a
// result counts as a probe outcome only when a probe is in flight.
//
// Contract: one thread per instance (each worker owns its breakers). Construction allocates the
// rolling window; no other call allocates. No exceptions.
#include <cstdint>

#include "frontdoor/resilience/clock.hpp"
#include "frontdoor/resilience/rolling_window.hpp"

namespace frontdoor::resilience {

struct CircuitBreakerConfig {
  std::uint32_t consecutive_failures = 5;     // trip after this many failures in a row; 0 = off
  double failure_rate_threshold = 0.0;        // trip when failures / results >= this (0..1]; 0 = off
  Duration window = std::chrono::seconds(10);  // for the failure rate
  std::uint32_t window_buckets = 10;
  std::uint32_t min_requests = 20;            // results needed in the window before the rate counts
  Duration open_duration = std::chrono::seconds(5);  // open -> half-open
  std::uint32_t half_open_max_probes = 1;     // probes admitted at once while half-open (>= 1)
  std::uint32_t half_open_successes_to_close = 1;  // (>= 1)

  friend bool operator==(const CircuitBreakerConfig&, const CircuitBreakerConfig&) = default;
};

struct CircuitBreakerCounters {
  std::uint64_t opened = 0;     // transitions to open (from closed or half-open)
  std::uint64_t closed = 0;     // transitions half-open -> closed
  std::uint64_t rejected = 0;   // allow() said no
  std::uint64_t successes = 0;  // results counted
  std::uint64_t failures = 0;
};

class CircuitBreaker {
 public:
  enum class State : std::uint8_t { closed, open, half_open };

  explicit CircuitBreaker(const CircuitBreakerConfig& config = {});

  // Admits a request (true) or rejects it (false, counted). Half-open: takes a probe slot.
  bool allow(TimePoint now) noexcept;
  void on_success(TimePoint now) noexcept;
  void on_failure(TimePoint now) noexcept;
  // The admitted request ended without a verdict (client went away, cancelled): frees its probe slot.
  void on_cancelled() noexcept;
  // Another instance watching the same endpoint (another worker's) opened: a closed breaker opens too,
  // for its own open_duration. A half-open or open one keeps its course.
  void open_from_peer(TimePoint now) noexcept;

  // A reload's settings, applied to a breaker in its course: the state is kept, an open one's time
  // counts from when it opened under the new open_duration, a new window starts empty, and a breaker
  // that can no longer trip (both triggers off) closes.
  void reconfigure(const CircuitBreakerConfig& config);

  // The state at `now` (an open breaker whose time is up reports, and becomes, half-open).
  State state(TimePoint now) noexcept;
  // While open: when it will admit probes (for Retry-After). Otherwise TimePoint{} (admits now).
  TimePoint half_open_at() const noexcept { return state_ == State::open ? half_open_at_ : TimePoint{}; }
  std::uint32_t probes_in_flight() const noexcept { return probes_; }

  const CircuitBreakerCounters& counters() const noexcept { return counters_; }
  const CircuitBreakerConfig& config() const noexcept { return config_; }

 private:
  void trip(TimePoint now) noexcept;
  void close() noexcept;
  void refresh(TimePoint now) noexcept;

  CircuitBreakerConfig config_;
  RollingWindow window_;  // first = successes, second = failures (closed state only)
  State state_ = State::closed;
  std::uint32_t consecutive_failures_ = 0;
  std::uint32_t probes_ = 0;
  std::uint32_t probe_successes_ = 0;
  TimePoint half_open_at_{};
  CircuitBreakerCounters counters_;
};

const char* to_string(CircuitBreaker::State state) noexcept;

}  // namespace frontdoor::resilience
