#include "frontdoor/ratelimit/compiled_limit.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "frontdoor/resilience/hash.hpp"

namespace frontdoor::ratelimit {

CompiledRateLimit compile_rate_limit(const config::RateLimitConfig& rc, std::string_view scope) {
  CompiledRateLimit limit;
  limit.name = rc.name;
  if (rc.key == "path") limit.key = CompiledRateLimit::Key::path;
  else if (rc.key == "manifest") limit.key = CompiledRateLimit::Key::manifest;
  else if (rc.key.rfind("header:", 0) == 0) {
    limit.key = CompiledRateLimit::Key::header;
    limit.header = rc.key.substr(7);
  }
  limit.policy = resilience::GcraPolicy(rc.requests_per_second, rc.burst);
  limit.id = resilience::hash_combine(resilience::hash64(scope), resilience::hash64(rc.name));
  limit.quota = rc.burst;
  limit.window_seconds = std::max<std::uint32_t>(1, (rc.burst + rc.requests_per_second - 1) / rc.requests_per_second);
  limit.cost = rc.cost;
  limit.ipv6_prefix = static_cast<std::uint8_t>(std::clamp<std::uint32_t>(rc.ipv6_prefix, 1, 128));
  limit.shaping = rc.algorithm == "leaky_bucket";
  if (rc.algorithm == "sliding_window") {
    limit.sliding = true;
    limit.window = {rc.requests_per_window, rc.window};
    limit.quota = rc.requests_per_window;
    limit.window_seconds = static_cast<std::uint32_t>(std::max<std::int64_t>(
        1, std::chrono::ceil<std::chrono::seconds>(rc.window).count()));
  }
  // A bucket refills at the rate: over w seconds a client gets the larger of the burst and w seconds
  // of the rate (50/s with a burst of 10 is 50 per second, not 10).
  const std::uint64_t policy_quota =
      limit.sliding ? limit.quota
                    : std::max<std::uint64_t>(limit.quota, std::uint64_t{rc.requests_per_second} * limit.window_seconds);
  limit.policy_item = "\"" + limit.name + "\";q=" +
                      std::to_string(std::min<std::uint64_t>(policy_quota, std::numeric_limits<std::uint32_t>::max())) +
                      ";w=" + std::to_string(limit.window_seconds);
  limit.global = rc.scope == "global";
  limit.on_redis_failure = rc.on_redis_failure == "allow"  ? CompiledRateLimit::OnRedisFailure::allow
                           : rc.on_redis_failure == "deny" ? CompiledRateLimit::OnRedisFailure::deny
                                                           : CompiledRateLimit::OnRedisFailure::local;
  // Rounded up: a whole microsecond too short an interval is a looser limit (600k/s granted about
  // 980k/s); one too long is stricter by under rate / 1e6 (never looser, as documented).
  limit.interval_us = std::max<std::int64_t>(1, (1'000'000 + rc.requests_per_second - 1) / rc.requests_per_second);
  limit.tolerance_us = limit.interval_us * rc.burst;
  // A lease covers about one lease_interval of traffic at the full rate, and at most half the burst
  // (so two holders cannot starve a third); never less than one request's cost.
  const double per_interval =
      rc.requests_per_second * std::chrono::duration<double>(rc.lease_interval).count();
  limit.batch = std::max<std::uint32_t>(
      rc.cost, std::min<std::uint32_t>(static_cast<std::uint32_t>(std::ceil(per_interval)), rc.burst / 2));
  return limit;
}

}  // namespace frontdoor::ratelimit
