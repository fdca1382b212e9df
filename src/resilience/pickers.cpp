#include "frontdoor/resilience/pickers.hpp"

#include <cmath>

namespace frontdoor::resilience {

SmoothWeightedPicker::SmoothWeightedPicker(std::span<const std::uint32_t> weights)
    : weights_(weights.begin(), weights.end()), current_(weights.size(), 0) {}

void EwmaLatency::update(Duration sample, TimePoint now) noexcept {
  const double s = static_cast<double>(std::max(sample, Duration::zero()).count());
  if (!sampled_) {
    value_ = s;
    last_ = now;
    sampled_ = true;
    return;
  }
  const double dt = static_cast<double>(std::max(now - last_, Duration::zero()).count());
  if (now > last_) last_ = now;
  if (peak_ && s > value_) {
    value_ = s;
    return;
  }
  const double w = std::exp(-dt / decay_ns_);
  value_ = value_ * w + s * (1.0 - w);
}

double EwmaLatency::value_ns(TimePoint now) const noexcept {
  if (!sampled_) return 0;
  const double dt = static_cast<double>(std::max(now - last_, Duration::zero()).count());
  return value_ * std::exp(-dt / decay_ns_);
}

double p2c_cost(double latency_ns, std::uint64_t inflight) noexcept {
  // Finagle's penalty for an endpoint not measured yet: far above any real latency, but finite and
  // growing with load so two unmeasured endpoints still compare by their in-flight counts.
  constexpr double kPenalty = 1e15;  // ~11.6 days in ns
  if (latency_ns <= 0) return inflight == 0 ? 0.0 : kPenalty + static_cast<double>(inflight);
  return latency_ns * static_cast<double>(inflight + 1);
}

ConsistentHashRing::ConsistentHashRing(std::span<const RingEndpoint> endpoints, const ConsistentHashConfig& config)
    : size_(endpoints.size()) {
  const std::uint64_t per_weight = std::max<std::uint32_t>(config.replicas_per_weight, 1);
  std::uint64_t total = 0;
  for (const auto& e : endpoints) total += e.weight * per_weight;
  const std::uint64_t cap = std::max<std::size_t>(config.max_points, 1);
  const double scale = total > cap ? static_cast<double>(cap) / static_cast<double>(total) : 1.0;
  points_.reserve(static_cast<std::size_t>(std::min(total, cap) + endpoints.size()));
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    if (endpoints[i].weight == 0) continue;
    auto replicas = static_cast<std::uint64_t>(static_cast<double>(endpoints[i].weight * per_weight) * scale);
    replicas = std::max<std::uint64_t>(replicas, 1);
    for (std::uint64_t r = 0; r < replicas; ++r) {
      points_.push_back({hash_combine(endpoints[i].identity, r), static_cast<std::uint32_t>(i)});
    }
  }
  // Ties (astronomically rare) broken by identity order, so every process builds the same ring.
  std::sort(points_.begin(), points_.end(), [&](const Point& a, const Point& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return endpoints[a.index].identity < endpoints[b.index].identity;
  });
}

}  // namespace frontdoor::resilience
