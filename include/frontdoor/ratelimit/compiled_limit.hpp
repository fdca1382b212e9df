#pragma once
// CompiledRateLimit: one `rate_limits` entry (top level or a manifest's) as the RateLimit stages
// apply it. Immutable, part of a snapshot::Snapshot.
#include <cstdint>
#include <string>
#include <string_view>

#include "frontdoor/config/config.hpp"
#include "frontdoor/resilience/rate_limiter.hpp"

namespace frontdoor::ratelimit {

// A rate limit as the RateLimit stage applies it.
struct CompiledRateLimit {
  enum class Key : std::uint8_t { client_ip, header, path, manifest };
  std::string name;
  Key key = Key::client_ip;
  std::string header;            // Key::header
  resilience::GcraPolicy policy{1, 1};
  std::uint64_t id = 0;          // mixed into every key: limits never share state
  std::uint32_t quota = 0;       // the burst (a sliding window's requests per window) ...
  std::uint32_t window_seconds = 0;  // ... refilled in w seconds (a sliding window's length)
  std::string policy_item;       // its RateLimit-Policy item, `"name";q=N;w=W`: the same on every response
  std::uint32_t cost = 1;
  std::uint8_t ipv6_prefix = 64;  // Key::client_ip: bits of an IPv6 address that tell clients apart
  std::uint32_t counter = 0;  // index of its allowed/refused counters (snapshot::Snapshot::rate_limit_labels)
  bool shaping = false;  // leaky_bucket: admitted requests wait for their turn (LimitDecision::delay)
  bool sliding = false;  // sliding_window: `window` instead of `policy`
  resilience::SlidingWindowConfig window{};
  // Global limits: shared through Redis, leased `batch` tokens at a time.
  enum class OnRedisFailure : std::uint8_t { local, allow, deny };
  bool global = false;
  OnRedisFailure on_redis_failure = OnRedisFailure::local;
  std::int64_t interval_us = 0;   // GCRA emission interval (1 / rate)
  std::int64_t tolerance_us = 0;  // burst x interval
  std::uint32_t batch = 1;
};

// `scope` tells limits of the same name apart: "" for the top level, the manifest's key for its own
// (a manifest's limit counts each client's requests to that manifest only).
CompiledRateLimit compile_rate_limit(const config::RateLimitConfig& config, std::string_view scope);

}  // namespace frontdoor::ratelimit
