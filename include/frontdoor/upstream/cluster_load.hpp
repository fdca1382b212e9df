#pragma once
// ClusterLoad: Envoy-style limits per upstream cluster (manifest), for the whole process — requests
// in flight, requests being retried, upstream connections and requests waiting for one, counted in relaxed atomics shared by every worker (a limit
// per worker would multiply it by the number of workers). Only manifests with a limit are counted.
// Indexed by Manifest::index; sized once for a snapshot. Any thread.
#include <atomic>
#include <cstdint>
#include <memory>

namespace frontdoor::upstream {

class ClusterLoad {
 public:
  explicit ClusterLoad(std::size_t manifests)
      : size_(manifests), requests_(new std::atomic<std::uint32_t>[manifests]()),
        retries_(new std::atomic<std::uint32_t>[manifests]()),
        connections_(new std::atomic<std::uint32_t>[manifests]()),
        pending_(new std::atomic<std::uint32_t>[manifests]()) {}

  // Takes a slot unless `limit` (0 = none) is reached.
  bool try_add_request(std::size_t manifest, std::uint32_t limit) noexcept { return try_add(requests_, manifest, limit); }
  void remove_request(std::size_t manifest) noexcept { remove(requests_, manifest); }
  bool try_add_retry(std::size_t manifest, std::uint32_t limit) noexcept { return try_add(retries_, manifest, limit); }
  void remove_retry(std::size_t manifest) noexcept { remove(retries_, manifest); }
  bool try_add_connection(std::size_t manifest, std::uint32_t limit) noexcept {
    return try_add(connections_, manifest, limit);
  }
  void remove_connection(std::size_t manifest) noexcept { remove(connections_, manifest); }
  bool try_add_pending(std::size_t manifest, std::uint32_t limit) noexcept { return try_add(pending_, manifest, limit); }
  void remove_pending(std::size_t manifest) noexcept { remove(pending_, manifest); }
  std::uint32_t connections(std::size_t manifest) const noexcept {
    return manifest < size_ ? connections_[manifest].load(std::memory_order_relaxed) : 0;
  }
  std::uint32_t requests(std::size_t manifest) const noexcept {
    return manifest < size_ ? requests_[manifest].load(std::memory_order_relaxed) : 0;
  }
  std::uint32_t pending(std::size_t manifest) const noexcept {
    return manifest < size_ ? pending_[manifest].load(std::memory_order_relaxed) : 0;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  void remove(std::unique_ptr<std::atomic<std::uint32_t>[]>& counters, std::size_t i) noexcept {
    if (i < size_) counters[i].fetch_sub(1, std::memory_order_relaxed);
  }
  bool try_add(std::unique_ptr<std::atomic<std::uint32_t>[]>& counters, std::size_t i, std::uint32_t limit) noexcept {
    if (i >= size_) return true;  // a manifest this table was not sized for: unlimited
    if (limit == 0) {
      counters[i].fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    auto current = counters[i].load(std::memory_order_relaxed);
    do {
      if (current >= limit) return false;
    } while (!counters[i].compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
    return true;
  }

  std::size_t size_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> requests_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> retries_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> connections_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> pending_;
};

}  // namespace frontdoor::upstream
