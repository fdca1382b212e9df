#include "frontdoor/resilience/retry_budget.hpp"

#include <algorithm>
#include <cmath>

namespace frontdoor::resilience {

namespace {
RetryBudgetConfig sanitize(RetryBudgetConfig c) {
  c.budget_percent = std::max(c.budget_percent, 0.0);
  c.min_retries_per_second = std::max(c.min_retries_per_second, 0.0);
  if (c.window <= Duration::zero()) c.window = std::chrono::seconds(10);
  c.window_buckets = std::max<std::uint32_t>(c.window_buckets, 1);
  return c;
}
}  // namespace

RetryBudget::RetryBudget(const RetryBudgetConfig& config)
    : config_(sanitize(config)), window_(config_.window, config_.window_buckets) {}

std::uint64_t RetryBudget::allowance(std::uint64_t requests) const noexcept {
  const double seconds = std::chrono::duration<double>(window_.window()).count();
  const double allowed = config_.budget_percent / 100.0 * static_cast<double>(requests) +
                         config_.min_retries_per_second * seconds;
  // A hair of tolerance so 20 % of 10 is 2, not 1.9999999.
  return static_cast<std::uint64_t>(std::floor(allowed + 1e-9));
}

void RetryBudget::on_request(TimePoint now) noexcept {
  ++counters_.requests;
  window_.add(now, 1, 0);
}

std::uint64_t RetryBudget::available(TimePoint now) noexcept {
  const auto t = window_.totals(now);
  const std::uint64_t allowed = allowance(t.first);
  return allowed > t.second ? allowed - t.second : 0;
}

bool RetryBudget::try_acquire_retry(TimePoint now) noexcept {
  if (available(now) == 0) {
    ++counters_.exhausted;
    return false;
  }
  ++counters_.retries;
  window_.add(now, 0, 1);
  return true;
}

Duration backoff_ceiling(std::uint32_t attempt, Duration base, Duration max) noexcept {
  if (base <= Duration::zero() || max <= Duration::zero()) return Duration::zero();
  if (base >= max) return max;
  // Doubling at most until max: at most 63 steps, no overflow.
  Duration ceiling = base;
  for (std::uint32_t i = 0; i < attempt && ceiling < max; ++i) ceiling = ceiling > max / 2 ? max : ceiling * 2;
  return std::min(ceiling, max);
}

Duration backoff_delay(std::uint32_t attempt, Duration base, Duration max, std::uint64_t random) noexcept {
  const auto ceiling = static_cast<std::uint64_t>(backoff_ceiling(attempt, base, max).count());
  // Uniform over the ceiling + 1 values 0..ceiling.
  return Duration(static_cast<Duration::rep>(SplitMix64::scale(random, ceiling + 1)));
}

}  // namespace frontdoor::resilience
