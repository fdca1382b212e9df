#pragma once
// RollingWindow: two counters (e.g. successes and failures, or requests and retries) summed over the
// last `window`, kept in `buckets` slices. A slice expires as a whole, so the totals cover between
// (buckets - 1) and buckets slices of time: with 10 buckets over 10 s, between 9 and 10 s.
//
// Contract: one thread per instance. Construction allocates the buckets; add/totals never allocate
// and cost O(1) amortised (O(buckets) after a long idle period).
#include <cstdint>
#include <vector>

#include "frontdoor/resilience/clock.hpp"

namespace frontdoor::resilience {

class RollingWindow {
 public:
  struct Totals {
    std::uint64_t first = 0;
    std::uint64_t second = 0;
  };

  // window > 0 and buckets >= 1 (clamped).
  RollingWindow(Duration window, std::uint32_t buckets);

  void add(TimePoint now, std::uint32_t first, std::uint32_t second) noexcept;
  Totals totals(TimePoint now) noexcept;
  void clear() noexcept;

  Duration window() const noexcept { return width_ * static_cast<Duration::rep>(buckets_.size()); }

 private:
  struct Bucket {
    std::uint64_t first = 0;
    std::uint64_t second = 0;
  };
  void advance(TimePoint now) noexcept;

  std::vector<Bucket> buckets_;
  Duration width_;
  std::int64_t head_slice_ = 0;  // slice number (time / width) of the newest bucket
  bool started_ = false;
  Totals totals_;
};

}  // namespace frontdoor::resilience
