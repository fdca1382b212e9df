#pragma once
// ResiliencePolicy: the resilience section of the config in the shape the algorithms take.
#include <bitset>
#include <cstdint>

#include "frontdoor/resilience/circuit_breaker.hpp"
#include "frontdoor/resilience/outlier_detector.hpp"
#include "frontdoor/resilience/retry_budget.hpp"

namespace frontdoor::resilience {

struct ResiliencePolicy {
  resilience::CircuitBreakerConfig breaker;
  resilience::OutlierDetectorConfig outliers;
  resilience::RetryBudgetConfig retry_budget;
  std::uint32_t max_attempts = 3;  // connect-failure retries go to another endpoint each time
  bool retry_on_reset = false;
  std::bitset<100> retry_on_statuses;  // bit (status - 500)
  resilience::Duration backoff_base = std::chrono::milliseconds(25);
  resilience::Duration backoff_max = std::chrono::milliseconds(250);
  resilience::Duration per_try_timeout{};  // 0 = off
  // What the breaker counts as a failure.
  bool breaker_counts_connect = true, breaker_counts_timeout = true, breaker_counts_bad_response = true,
       breaker_counts_5xx = false;
  bool try_when_all_open = false;  // circuit_breaker.when_all_open: try_anyway
  bool fail_when_all_ejected = false;  // outlier_detection.when_all_ejected: fail

  bool retries_status(unsigned status) const noexcept {
    return status >= 500 && status < 600 && retry_on_statuses.test(status - 500);
  }
};

}  // namespace frontdoor::resilience
