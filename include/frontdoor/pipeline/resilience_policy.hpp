#pragma once
// ResiliencePolicy: the resilience section of the config in the shape the algorithms take.
#include <cstdint>

#include "frontdoor/resilience/circuit_breaker.hpp"
#include "frontdoor/resilience/outlier_detector.hpp"
#include "frontdoor/resilience/retry_budget.hpp"

namespace frontdoor::pipeline {

struct ResiliencePolicy {
  resilience::CircuitBreakerConfig breaker;
  resilience::OutlierDetectorConfig outliers;
  resilience::RetryBudgetConfig retry_budget;
  std::uint32_t max_attempts = 3;  // connect-failure retries go to another endpoint each time
};

}  // namespace frontdoor::pipeline
