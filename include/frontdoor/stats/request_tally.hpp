#pragma once
// RequestTally: every finished request by (method, route, status), and its duration by route in
// fixed histogram buckets — fd_requests_total{method,endpoint,status} and
// fd_request_duration_seconds{endpoint}. Kept per worker in plain integers, summed when scraped.
// Labels stay bounded: methods fold to nine, routes are the manifest keys ever configured (their
// stable Manifest::route: a reload that reorders manifests keeps each count under its own name; 0
// when none matched), statuses are the codes answered. Worker thread only (summing: the caller's).
#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace frontdoor::stats {

class RequestTally {
 public:
  static constexpr std::array<double, 10> kBuckets{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  static constexpr std::array<std::string_view, 9> kMethods{"GET", "HEAD", "POST", "PUT", "DELETE",
                                                           "PATCH", "OPTIONS", "CONNECT", "other"};

  struct Histogram {
    std::array<std::uint64_t, kBuckets.size() + 1> counts{};  // per bucket (not cumulative), +Inf last
    double sum = 0;
    std::uint64_t count = 0;
  };

  static std::uint8_t method_index(std::string_view method) noexcept {
    for (std::size_t i = 0; i + 1 < kMethods.size(); ++i)
      if (method == kMethods[i]) return static_cast<std::uint8_t>(i);
    return static_cast<std::uint8_t>(kMethods.size() - 1);
  }

  // `status` 0: no response was sent (the client left first).
  void record(std::uint8_t method, std::uint32_t route, unsigned status, double seconds) {
    ++counts_[key(method, route, status)];
    if (durations_.size() <= route) durations_.resize(route + 1);
    auto& h = durations_[route];
    std::size_t b = 0;
    while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
    ++h.counts[b];
    h.sum += seconds;
    ++h.count;
  }

  RequestTally& operator+=(const RequestTally& o) {
    for (const auto& [k, n] : o.counts_) counts_[k] += n;
    if (durations_.size() < o.durations_.size()) durations_.resize(o.durations_.size());
    for (std::size_t r = 0; r < o.durations_.size(); ++r) {
      for (std::size_t b = 0; b < o.durations_[r].counts.size(); ++b) durations_[r].counts[b] += o.durations_[r].counts[b];
      durations_[r].sum += o.durations_[r].sum;
      durations_[r].count += o.durations_[r].count;
    }
    return *this;
  }

  // Visits every (method, route, status, count).
  template <class F>
  void each_count(F&& f) const {
    for (const auto& [k, n] : counts_)
      f(static_cast<std::uint8_t>(k >> 48), static_cast<std::uint32_t>((k >> 16) & 0xffffffffu),
        static_cast<unsigned>(k & 0xffff), n);
  }
  const std::vector<Histogram>& durations() const noexcept { return durations_; }

 private:
  static std::uint64_t key(std::uint8_t method, std::uint32_t route, unsigned status) noexcept {
    return (std::uint64_t{method} << 48) | (std::uint64_t{route} << 16) | (status & 0xffffu);
  }
  std::unordered_map<std::uint64_t, std::uint64_t> counts_;
  std::vector<Histogram> durations_;
};

}  // namespace frontdoor::stats
