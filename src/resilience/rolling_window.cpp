#include "frontdoor/resilience/rolling_window.hpp"

#include <algorithm>

namespace frontdoor::resilience {

RollingWindow::RollingWindow(Duration window, std::uint32_t buckets)
    : buckets_(std::max<std::uint32_t>(buckets, 1)),
      width_(std::max<Duration>(window / static_cast<Duration::rep>(buckets_.size()), Duration{1})) {}

void RollingWindow::advance(TimePoint now) noexcept {
  // Floor division: a time point before the clock's epoch still maps to a monotonic slice number.
  const auto t = now.time_since_epoch().count();
  const auto w = width_.count();
  const std::int64_t slice = t >= 0 ? t / w : -((-t + w - 1) / w);
  if (!started_) {
    started_ = true;
    head_slice_ = slice;
    return;
  }
  if (slice <= head_slice_) return;  // same slice, or a caller's clock a little behind: count in the newest
  const auto n = static_cast<std::int64_t>(buckets_.size());
  if (slice - head_slice_ >= n) {
    clear();
    started_ = true;
    head_slice_ = slice;
    return;
  }
  while (head_slice_ < slice) {
    ++head_slice_;
    Bucket& b = buckets_[static_cast<std::size_t>(((head_slice_ % n) + n) % n)];
    totals_.first -= b.first;
    totals_.second -= b.second;
    b = Bucket{};
  }
}

void RollingWindow::add(TimePoint now, std::uint32_t first, std::uint32_t second) noexcept {
  advance(now);
  const auto n = static_cast<std::int64_t>(buckets_.size());
  Bucket& b = buckets_[static_cast<std::size_t>(((head_slice_ % n) + n) % n)];
  b.first += first;
  b.second += second;
  totals_.first += first;
  totals_.second += second;
}

RollingWindow::Totals RollingWindow::totals(TimePoint now) noexcept {
  advance(now);
  return totals_;
}

void RollingWindow::clear() noexcept {
  std::fill(buckets_.begin(), buckets_.end(), Bucket{});
  totals_ = Totals{};
  started_ = false;
}

}  // namespace frontdoor::resilience
