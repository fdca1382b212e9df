#pragma once
// RetryBudget: retries may not amplify an outage. A retry is allowed while
//   retries in the window + 1  <=  budget_percent/100 x requests in the window
//                                 + min_retries_per_second x window (seconds)
// (the Finagle / Linkerd budget; Envoy's budget bounds concurrent retries the same way). The floor
// keeps retries possible at low traffic. Count only first attempts with on_request; a retry that
// try_acquire_retry admitted is counted as a retry, not as a request.
//
// Backoff: exponential backoff with full jitter (delay uniform in [0, min(max, base x 2^attempt)]),
// the random value passed in so tests are deterministic.
//
// Contract: one thread per instance (per worker, per upstream pool). Construction allocates the
// window; no other call does.
#include <cstdint>

#include "frontdoor/resilience/clock.hpp"
#include "frontdoor/resilience/random.hpp"
#include "frontdoor/resilience/rolling_window.hpp"

namespace frontdoor::resilience {

struct RetryBudgetConfig {
  double budget_percent = 20.0;         // retries as a share of requests
  double min_retries_per_second = 3.0;  // allowed however little traffic there is
  Duration window = std::chrono::seconds(10);
  std::uint32_t window_buckets = 10;
};

struct RetryBudgetCounters {
  std::uint64_t requests = 0;
  std::uint64_t retries = 0;    // admitted
  std::uint64_t exhausted = 0;  // refused by the budget
};

class RetryBudget {
 public:
  explicit RetryBudget(const RetryBudgetConfig& config = {});

  void on_request(TimePoint now) noexcept;
  // Takes a retry from the budget (true) or refuses it (false, counted in exhausted).
  bool try_acquire_retry(TimePoint now) noexcept;
  // Retries still available now (for metrics and tests).
  std::uint64_t available(TimePoint now) noexcept;
  // A retry refused because available() was 0 when it was asked (counted in exhausted).
  void count_refusal() noexcept { ++counters_.exhausted; }

  const RetryBudgetCounters& counters() const noexcept { return counters_; }

 private:
  std::uint64_t allowance(std::uint64_t requests) const noexcept;

  RetryBudgetConfig config_;
  RollingWindow window_;  // first = requests, second = retries
  RetryBudgetCounters counters_;
};

// Exponential backoff with full jitter. attempt 0 is the first retry. Returns a delay in
// [0, min(max, base x 2^attempt)], chosen by `random` (uniform over 64 bits: 0 -> 0, ~0 -> the ceiling).
Duration backoff_delay(std::uint32_t attempt, Duration base, Duration max, std::uint64_t random) noexcept;
// The ceiling itself: min(max, base x 2^attempt), without overflow.
Duration backoff_ceiling(std::uint32_t attempt, Duration base, Duration max) noexcept;

}  // namespace frontdoor::resilience
