#include "frontdoor/resilience/circuit_breaker.hpp"

#include <algorithm>

namespace frontdoor::resilience {

namespace {
CircuitBreakerConfig sanitize(CircuitBreakerConfig c) {
  c.half_open_max_probes = std::max<std::uint32_t>(c.half_open_max_probes, 1);
  c.half_open_successes_to_close = std::max<std::uint32_t>(c.half_open_successes_to_close, 1);
  c.failure_rate_threshold = std::clamp(c.failure_rate_threshold, 0.0, 1.0);
  c.window_buckets = std::max<std::uint32_t>(c.window_buckets, 1);
  if (c.window <= Duration::zero()) c.window = std::chrono::seconds(10);
  if (c.open_duration < Duration::zero()) c.open_duration = Duration::zero();
  return c;
}
}  // namespace

CircuitBreaker::CircuitBreaker(const CircuitBreakerConfig& config)
    : config_(sanitize(config)), window_(config_.window, config_.window_buckets) {}

void CircuitBreaker::reconfigure(const CircuitBreakerConfig& config) {
  const CircuitBreakerConfig next = sanitize(config);
  if (next == config_) return;
  if (next.window != config_.window || next.window_buckets != config_.window_buckets)
    window_ = RollingWindow(next.window, next.window_buckets);
  if (state_ == State::open) half_open_at_ = half_open_at_ - config_.open_duration + next.open_duration;
  config_ = next;
  if (config_.consecutive_failures == 0 && config_.failure_rate_threshold <= 0 && state_ != State::closed) close();
}

void CircuitBreaker::refresh(TimePoint now) noexcept {
  if (state_ == State::open && now >= half_open_at_) {
    state_ = State::half_open;
    probes_ = 0;
    probe_successes_ = 0;
  }
}

CircuitBreaker::State CircuitBreaker::state(TimePoint now) noexcept {
  refresh(now);
  return state_;
}

bool CircuitBreaker::allow(TimePoint now) noexcept {
  refresh(now);
  switch (state_) {
    case State::closed:
      return true;
    case State::half_open:
      if (probes_ < config_.half_open_max_probes) {
        ++probes_;
        return true;
      }
      break;
    case State::open:
      break;
  }
  ++counters_.rejected;
  return false;
}

void CircuitBreaker::on_success(TimePoint now) noexcept {
  refresh(now);
  switch (state_) {
    case State::closed:
      ++counters_.successes;
      consecutive_failures_ = 0;
      if (config_.failure_rate_threshold > 0) window_.add(now, 1, 0);
      return;
    case State::half_open:
      if (probes_ == 0) return;  // a straggler admitted before the breaker opened
      ++counters_.successes;
      --probes_;
      if (++probe_successes_ >= config_.half_open_successes_to_close) close();
      return;
    case State::open:
      return;
  }
}

void CircuitBreaker::on_failure(TimePoint now) noexcept {
  refresh(now);
  switch (state_) {
    case State::closed: {
      ++counters_.failures;
      ++consecutive_failures_;
      if (config_.consecutive_failures > 0 && consecutive_failures_ >= config_.consecutive_failures) {
        trip(now);
        return;
      }
      if (config_.failure_rate_threshold > 0) {
        window_.add(now, 0, 1);
        const auto t = window_.totals(now);
        const std::uint64_t results = t.first + t.second;
        if (results >= config_.min_requests && results > 0 &&
            static_cast<double>(t.second) >= config_.failure_rate_threshold * static_cast<double>(results)) {
          trip(now);
        }
      }
      return;
    }
    case State::half_open:
      if (probes_ == 0) return;
      ++counters_.failures;
      trip(now);
      return;
    case State::open:
      return;
  }
}

void CircuitBreaker::open_from_peer(TimePoint now) noexcept {
  refresh(now);
  if (state_ == State::closed) trip(now);
}

void CircuitBreaker::on_cancelled() noexcept {
  if (state_ == State::half_open && probes_ > 0) --probes_;
}

void CircuitBreaker::trip(TimePoint now) noexcept {
  state_ = State::open;
  half_open_at_ = now + config_.open_duration;
  ++counters_.opened;
  consecutive_failures_ = 0;
  probes_ = 0;
  probe_successes_ = 0;
  window_.clear();
}

void CircuitBreaker::close() noexcept {
  state_ = State::closed;
  ++counters_.closed;
  consecutive_failures_ = 0;
  probes_ = 0;
  probe_successes_ = 0;
  window_.clear();
}

const char* to_string(CircuitBreaker::State state) noexcept {
  switch (state) {
    case CircuitBreaker::State::closed: return "closed";
    case CircuitBreaker::State::open: return "open";
    case CircuitBreaker::State::half_open: return "half_open";
  }
  return "?";
}

}  // namespace frontdoor::resilience
