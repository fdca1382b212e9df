#include "frontdoor/resilience/outlier_detector.hpp"

#include <algorithm>

namespace frontdoor::resilience {

namespace {
OutlierDetectorConfig sanitize(OutlierDetectorConfig c) {
  c.max_ejection_percent = std::min<std::uint32_t>(c.max_ejection_percent, 100);
  if (c.base_ejection_time < Duration::zero()) c.base_ejection_time = Duration::zero();
  if (c.max_ejection_time < c.base_ejection_time) c.max_ejection_time = c.base_ejection_time;
  return c;
}
}  // namespace

OutlierDetector::OutlierDetector(const OutlierDetectorConfig& config, std::size_t endpoints)
    : config_(sanitize(config)),
      endpoints_(endpoints),
      max_ejected_(endpoints * config_.max_ejection_percent / 100) {}

void OutlierDetector::expire(Endpoint& e, TimePoint now) noexcept {
  if (e.is_ejected && now >= e.until) {
    e.is_ejected = false;
    e.failures = 0;
    e.returned = e.until;
    --ejected_;
    ++counters_.unejections;
  }
}

void OutlierDetector::expire_all(TimePoint now) noexcept {
  for (Endpoint& e : endpoints_) expire(e, now);
}

bool OutlierDetector::try_eject(Endpoint& e, TimePoint now) noexcept {
  expire_all(now);  // rare (a failure run reached its threshold): O(pool) is fine
  if (ejected_ >= max_ejected_) {
    ++counters_.overflow;
    return false;
  }
  if (e.multiplier > 0 && config_.base_ejection_time > Duration::zero()) {
    const auto healthy_periods = static_cast<std::uint64_t>((now - e.returned) / config_.base_ejection_time);
    e.multiplier = healthy_periods >= e.multiplier ? 0 : e.multiplier - static_cast<std::uint32_t>(healthy_periods);
  }
  if (e.multiplier < UINT32_MAX) ++e.multiplier;
  // base x multiplier, capped, without overflowing.
  const auto max_multiplier = config_.base_ejection_time > Duration::zero()
                                  ? config_.max_ejection_time / config_.base_ejection_time + 1
                                  : 1;
  const Duration time = std::min<Duration>(
      config_.max_ejection_time,
      config_.base_ejection_time * std::min<Duration::rep>(e.multiplier, max_multiplier));
  e.is_ejected = true;
  e.until = now + time;
  e.failures = 0;
  ++ejected_;
  ++counters_.ejections;
  return true;
}

void OutlierDetector::on_result(std::size_t index, bool failure, TimePoint now) noexcept {
  if (index >= endpoints_.size()) return;
  Endpoint& e = endpoints_[index];
  expire(e, now);
  if (e.is_ejected) return;  // a request that was in flight when it was ejected
  if (!failure) {
    e.failures = 0;
    return;
  }
  if (e.failures < UINT32_MAX) ++e.failures;
  if (config_.consecutive_failures > 0 && e.failures >= config_.consecutive_failures) try_eject(e, now);
}

bool OutlierDetector::ejected(std::size_t index, TimePoint now) noexcept {
  if (index >= endpoints_.size()) return false;
  Endpoint& e = endpoints_[index];
  expire(e, now);
  return e.is_ejected;
}

bool OutlierDetector::eject(std::size_t index, TimePoint now) noexcept {
  if (index >= endpoints_.size()) return false;
  Endpoint& e = endpoints_[index];
  expire(e, now);
  return e.is_ejected || try_eject(e, now);
}

TimePoint OutlierDetector::ejected_until(std::size_t index, TimePoint now) noexcept {
  return ejected(index, now) ? endpoints_[index].until : TimePoint{};
}

std::size_t OutlierDetector::ejected_count(TimePoint now) noexcept {
  expire_all(now);
  return ejected_;
}

}  // namespace frontdoor::resilience
