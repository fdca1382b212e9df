#pragma once
// Load-balancing pickers. Each is built once from an immutable endpoint list (a manifest version) and
// returns an index into that list, or kNoEndpoint when no endpoint is usable. The caller says which
// indices are usable (breaker closed or probing, not ejected, healthy) with a predicate `usable(i)`;
// pickers never learn why. Nothing here allocates after construction.
//
// Threads: RoundRobinPicker, SmoothWeightedPicker, LeastOutstandingPicker and PowerOfTwoPicker keep a
// little mutable state and belong to one worker. ConsistentHashRing and PriorityLevels are immutable
// after construction: one instance may be shared by all workers. EwmaLatency belongs to one worker.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "frontdoor/resilience/clock.hpp"
#include "frontdoor/resilience/hash.hpp"

namespace frontdoor::resilience {

inline constexpr std::size_t kNoEndpoint = std::numeric_limits<std::size_t>::max();

template <class F>
concept IndexPredicate = std::predicate<F&, std::size_t>;

template <class F>
concept IndexToNumber = requires(F& f, std::size_t i) {
  { f(i) } -> std::convertible_to<double>;
};

// Plain rotation over the usable endpoints.
class RoundRobinPicker {
 public:
  // `start`: where the rotation begins (each worker starts at its own offset, so that requests
  // spread over workers do not all begin at the first endpoint).
  explicit RoundRobinPicker(std::size_t size, std::size_t start = 0) noexcept
      : size_(size), cursor_(size == 0 ? 0 : start % size) {}

  template <IndexPredicate Usable>
  std::size_t pick(Usable&& usable) noexcept {
    for (std::size_t k = 0; k < size_; ++k) {
      const std::size_t i = (cursor_ + k) % size_;
      if (usable(i)) {
        cursor_ = (i + 1) % size_;
        return i;
      }
    }
    return kNoEndpoint;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  std::size_t size_;
  std::size_t cursor_ = 0;
};

// nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a (no bursts). Weight 0 endpoints
// are never picked. Unusable endpoints sit out without disturbing the others' sequence.
class SmoothWeightedPicker {
 public:
  explicit SmoothWeightedPicker(std::span<const std::uint32_t> weights);

  template <IndexPredicate Usable>
  std::size_t pick(Usable&& usable) noexcept {
    std::int64_t total = 0;
    std::size_t best = kNoEndpoint;
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      if (weights_[i] == 0 || !usable(i)) continue;
      current_[i] += weights_[i];
      total += weights_[i];
      if (best == kNoEndpoint || current_[i] > current_[best]) best = i;
    }
    if (best != kNoEndpoint) current_[best] -= total;
    return best;
  }
  std::size_t size() const noexcept { return weights_.size(); }

 private:
  std::vector<std::int64_t> weights_;
  std::vector<std::int64_t> current_;
};

// Least outstanding requests, weighted: the usable endpoint with the smallest (inflight + 1) / weight.
// Ties rotate, so an idle pool is served round robin rather than piling onto index 0. `inflight(i)` is
// the caller's count of requests in flight to endpoint i. O(size) per pick.
class LeastOutstandingPicker {
 public:
  explicit LeastOutstandingPicker(std::span<const std::uint32_t> weights) : weights_(weights.begin(), weights.end()) {}

  template <IndexPredicate Usable, IndexToNumber Inflight>
  std::size_t pick(Usable&& usable, Inflight&& inflight) noexcept {
    const std::size_t n = weights_.size();
    std::size_t best = kNoEndpoint;
    unsigned __int128 best_load = 0;  // (inflight + 1) of best, cross-multiplied by the other's weight
    std::uint64_t best_weight = 1;
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (cursor_ + k) % n;
      if (weights_[i] == 0 || !usable(i)) continue;
      const auto load = static_cast<std::uint64_t>(inflight(i)) + 1;
      if (best == kNoEndpoint ||
          static_cast<unsigned __int128>(load) * best_weight < best_load * weights_[i]) {
        best = i;
        best_load = load;
        best_weight = weights_[i];
      }
    }
    if (n > 0) cursor_ = (cursor_ + 1) % n;
    return best;
  }
  std::size_t size() const noexcept { return weights_.size(); }

 private:
  std::vector<std::uint64_t> weights_;
  std::size_t cursor_ = 0;
};

// Latency moving average for one endpoint, decayed by time rather than by sample count (Finagle's and
// Linkerd's "peak EWMA"): a sample taken dt after the previous one has weight 1 - exp(-dt / decay);
// with `peak`, a sample above the average replaces it at once, so a slowing endpoint is avoided
// immediately and forgiven gradually. Read with value(now), the average also decays towards zero while
// no sample arrives, so an endpoint avoided for a spike is eventually tried again. Pass a precise clock:
// samples taken at the very same instant as the previous one carry no weight.
class EwmaLatency {
 public:
  EwmaLatency() noexcept : EwmaLatency(std::chrono::seconds(10)) {}
  explicit EwmaLatency(Duration decay, bool peak = true) noexcept
      : decay_ns_(std::max(1.0, static_cast<double>(decay.count()))), peak_(peak) {}

  void update(Duration sample, TimePoint now) noexcept;
  // Nanoseconds; 0 before the first sample.
  double value_ns(TimePoint now) const noexcept;
  bool has_sample() const noexcept { return sampled_; }

 private:
  double decay_ns_;
  double value_ = 0;
  TimePoint last_{};
  bool sampled_ = false;
  bool peak_;
};

// The cost power-of-two-choices compares: latency x (inflight + 1). An endpoint without any latency
// sample yet costs a large penalty per request in flight, so a new endpoint takes one request at a
// time until it has answered once (instead of all the traffic, as a zero latency would attract).
double p2c_cost(double latency_ns, std::uint64_t inflight) noexcept;

// Power of two choices: two distinct usable endpoints chosen at random (from one 64-bit random value),
// the cheaper by cost(i) wins. An unusable draw moves to the next usable index.
class PowerOfTwoPicker {
 public:
  explicit PowerOfTwoPicker(std::size_t size) noexcept : size_(size) {}

  template <IndexPredicate Usable, IndexToNumber Cost>
  std::size_t pick(std::uint64_t random, Usable&& usable, Cost&& cost) const noexcept {
    const std::size_t n = size_;
    if (n == 0) return kNoEndpoint;
    const std::size_t a = next_usable(draw(random, n), kNoEndpoint, usable);
    if (a == kNoEndpoint || n == 1) return a;
    const std::size_t b = next_usable((a + 1 + draw(random >> 32, n - 1)) % n, a, usable);
    if (b == kNoEndpoint) return a;
    return static_cast<double>(cost(b)) < static_cast<double>(cost(a)) ? b : a;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  static std::size_t draw(std::uint64_t random, std::size_t n) noexcept {
    return static_cast<std::size_t>(((random & 0xffffffffULL) * n) >> 32);
  }
  template <class Usable>
  std::size_t next_usable(std::size_t from, std::size_t skip, Usable& usable) const noexcept {
    for (std::size_t k = 0; k < size_; ++k) {
      const std::size_t i = (from + k) % size_;
      if (i != skip && usable(i)) return i;
    }
    return kNoEndpoint;
  }
  std::size_t size_;
};

// Consistent hashing on a ring with virtual nodes (Karger et al.; ketama). Endpoints are placed by a
// stable identity (e.g. hash64("host:port") or the EndpointId), never by their index, so removing one
// endpoint of ten moves only the keys it owned (~10 %). weight x replicas_per_weight points per
// endpoint, scaled down if the ring would exceed max_points. An unusable endpoint's keys go to the
// next usable point clockwise, exactly as if it had been removed. Immutable: share it across threads.
struct RingEndpoint {
  std::uint64_t identity;
  std::uint32_t weight = 1;
};

struct ConsistentHashConfig {
  std::uint32_t replicas_per_weight = 160;
  std::size_t max_points = 1u << 16;
};

class ConsistentHashRing {
 public:
  explicit ConsistentHashRing(std::span<const RingEndpoint> endpoints, const ConsistentHashConfig& config = {});

  // `key` is any 64-bit hash of the request's key (hash64 of the URI, a header, a cookie); it is mixed
  // again here, so even small integers spread.
  template <IndexPredicate Usable>
  std::size_t pick(std::uint64_t key, Usable&& usable) const noexcept {
    if (points_.empty()) return kNoEndpoint;
    const std::uint64_t h = mix64(key);
    auto it = std::lower_bound(points_.begin(), points_.end(), h,
                               [](const Point& p, std::uint64_t v) { return p.hash < v; });
    std::size_t pos = static_cast<std::size_t>(it - points_.begin());
    for (std::size_t k = 0; k < points_.size(); ++k) {
      const Point& p = points_[(pos + k) % points_.size()];
      if (usable(static_cast<std::size_t>(p.index))) return p.index;
    }
    return kNoEndpoint;
  }
  std::size_t pick(std::uint64_t key) const noexcept {
    return pick(key, [](std::size_t) { return true; });
  }
  std::size_t points() const noexcept { return points_.size(); }
  std::size_t size() const noexcept { return size_; }

 private:
  struct Point {
    std::uint64_t hash;
    std::uint32_t index;
  };
  std::vector<Point> points_;  // sorted by hash
  std::size_t size_;
};

// Priority failover: endpoints carry a priority (0 = primary, 1 = first fallback, ...). choose() picks
// the most preferred level that has a usable endpoint; when no endpoint at all is usable it returns
// panic = true with the most preferred level, whose endpoints should then all be tried (better a
// likely failure than a certain one). usable_in(choice, usable) is the predicate to give a picker.
// Immutable: share it across threads.
class PriorityLevels {
 public:
  struct Choice {
    std::uint32_t priority = 0;
    bool panic = false;
  };

  explicit PriorityLevels(std::span<const std::uint32_t> priorities)
      : priorities_(priorities.begin(), priorities.end()) {
    for (auto p : priorities_) first_ = std::min(first_, p);
    if (priorities_.empty()) first_ = 0;
  }

  template <IndexPredicate Usable>
  Choice choose(Usable&& usable) const noexcept {
    std::uint32_t best = std::numeric_limits<std::uint32_t>::max();
    bool found = false;
    for (std::size_t i = 0; i < priorities_.size(); ++i) {
      if ((!found || priorities_[i] < best) && usable(i)) {
        best = priorities_[i];
        found = true;
      }
    }
    return found ? Choice{best, false} : Choice{first_, true};
  }

  bool in_level(std::size_t index, Choice choice) const noexcept {
    return index < priorities_.size() && priorities_[index] == choice.priority;
  }

  // The predicate for the picker: in the chosen level and usable (or, in panic, in the level).
  template <IndexPredicate Usable>
  auto usable_in(Choice choice, Usable& usable) const noexcept {
    return [this, choice, &usable](std::size_t i) { return in_level(i, choice) && (choice.panic || usable(i)); };
  }

  std::size_t size() const noexcept { return priorities_.size(); }

 private:
  std::vector<std::uint32_t> priorities_;
  std::uint32_t first_ = std::numeric_limits<std::uint32_t>::max();
};

}  // namespace frontdoor::resilience
