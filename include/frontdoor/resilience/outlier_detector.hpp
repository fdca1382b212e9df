#pragma once
// OutlierDetector: passive ejection of the endpoints of one pool, by index (0..size-1).
//
// An endpoint is ejected after `consecutive_failures` failures in a row (the caller counts 5xx and
// gateway errors: connect failure, reset, timeout). It stays ejected for
//   base_ejection_time x (times ejected), capped at max_ejection_time,
// and returns by itself when that time has passed. The multiplier decays by one for every
// base_ejection_time the endpoint then spends un-ejected, so an endpoint that recovered for good is
// not punished for its past. Never more than floor(size x max_ejection_percent / 100) endpoints are
// ejected at once: a failure that would exceed it is counted in `overflow` and the endpoint stays in
// (its failure run is kept, so it is ejected as soon as room frees up).
//
// Contract: one thread per instance (a worker's view of a pool; the control thread may fan ejections out
// with eject()). Construction allocates; no other call does. Indices out of range are ignored.
#include <cstdint>
#include <vector>

#include "frontdoor/resilience/clock.hpp"

namespace frontdoor::resilience {

struct OutlierDetectorConfig {
  std::uint32_t consecutive_failures = 5;  // 0 = passive ejection off
  Duration base_ejection_time = std::chrono::seconds(30);
  Duration max_ejection_time = std::chrono::seconds(300);
  std::uint32_t max_ejection_percent = 50;  // of the pool, rounded down
};

struct OutlierDetectorCounters {
  std::uint64_t ejections = 0;    // endpoints ejected
  std::uint64_t unejections = 0;  // endpoints returned after their time
  std::uint64_t overflow = 0;     // ejections refused by max_ejection_percent
};

class OutlierDetector {
 public:
  OutlierDetector(const OutlierDetectorConfig& config, std::size_t endpoints);

  void on_result(std::size_t index, bool failure, TimePoint now) noexcept;
  bool ejected(std::size_t index, TimePoint now) noexcept;
  // Ejects now, as if its failures had been seen here (e.g. fanned out from another worker).
  // Respects max_ejection_percent; returns whether the endpoint is ejected afterwards.
  bool eject(std::size_t index, TimePoint now) noexcept;
  // When an ejected endpoint returns; TimePoint{} if it is not ejected.
  TimePoint ejected_until(std::size_t index, TimePoint now) noexcept;
  std::size_t ejected_count(TimePoint now) noexcept;
  std::size_t max_ejected() const noexcept { return max_ejected_; }
  std::size_t size() const noexcept { return endpoints_.size(); }

  const OutlierDetectorCounters& counters() const noexcept { return counters_; }

 private:
  struct Endpoint {
    std::uint32_t failures = 0;       // current run of consecutive failures
    std::uint32_t multiplier = 0;     // ejections not yet forgiven
    bool is_ejected = false;
    TimePoint until{};                // while ejected: when it returns
    TimePoint returned{};             // when it last returned (for the multiplier's decay)
  };
  void expire(Endpoint& e, TimePoint now) noexcept;
  void expire_all(TimePoint now) noexcept;
  bool try_eject(Endpoint& e, TimePoint now) noexcept;

  OutlierDetectorConfig config_;
  std::vector<Endpoint> endpoints_;
  std::size_t max_ejected_;
  std::size_t ejected_ = 0;
  OutlierDetectorCounters counters_;
};

}  // namespace frontdoor::resilience
