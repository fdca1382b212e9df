#pragma once
// The stages of the request pipeline, in order: RateLimit -> Manifest -> ManifestRateLimit ->
// LoadShed -> Breaker -> Pick (RequestPipeline below). What follows a Continue is the upstream
// exchange (proxy/exchange.hpp), which calls PickStage again for a retry.
// Each stage is owned by one worker and used from its thread only.
#include <cstdint>
#include <optional>
#include <vector>

#include "frontdoor/snapshot/snapshot.hpp"
#include "frontdoor/upstream/cluster_load.hpp"
#include "frontdoor/pipeline/pipeline.hpp"
#include "frontdoor/pipeline/upstream_health.hpp"
#include "frontdoor/ratelimit/global_limiter.hpp"
#include "frontdoor/resilience/rate_limiter.hpp"

namespace frontdoor::pipeline {

// Rate limiting: every limit of its list takes `cost` units from the request's key. Local limits
// use the process-wide LimiterTable (shared by the workers: one client spread over them by
// SO_REUSEPORT still gets the limit once). Over a limit: 429 with Retry-After. Every response
// carries RateLimit-Policy (its limits) and RateLimit (the one with the least left) as in
// draft-ietf-httpapi-ratelimit-headers.
//
// Two instances: the top-level limits run first of all (before any manifest work, so a flood is
// refused at the least cost); a manifest's own limits run once the manifest is known.
//
// Global limits (scope: global) take their tokens from the worker's GlobalRateLimiter instead; one
// that must wait for Redis suspends the request (Verdict::Suspend) and the session runs the
// pipeline again when woken: it resumes at this stage, at the limit that waited. When Redis cannot
// answer, the limit's on_redis_failure decides: this process's table (local), no limit (allow), or
// 503 (deny).
enum class LimitScope : std::uint8_t { process, manifest };

struct RateLimitCounts {
  std::uint64_t allowed = 0;
  std::uint64_t refused = 0;
};

template <LimitScope Scope>
class BasicRateLimitStage {
 public:
  // `counts`: the worker's allowed/refused counters by ratelimit::CompiledRateLimit::counter (may be null).
  explicit BasicRateLimitStage(resilience::LocalLimitTables* table, ratelimit::GlobalRateLimiter* global = nullptr,
                               std::vector<RateLimitCounts>* counts = nullptr)
      : table_(table), global_(global), counts_(counts) {}
  Verdict on_request(RequestContext& ctx) noexcept;
  void on_complete(RequestContext&) noexcept {}

 private:
  std::optional<resilience::LimitDecision> acquire_global(const ratelimit::CompiledRateLimit& limit, std::uint64_t key,
                                                          RequestContext& ctx) noexcept;

  resilience::LimitDecision acquire_local(const ratelimit::CompiledRateLimit& limit, std::uint64_t key,
                                         const RequestContext& ctx) noexcept;
  void refund(const std::vector<ratelimit::CompiledRateLimit>& limits, std::size_t end,
              const RequestContext& ctx) noexcept;
  void refund_all_before(const std::vector<ratelimit::CompiledRateLimit>& limits, std::size_t refused_at,
                         const RequestContext& ctx) noexcept;

  resilience::LocalLimitTables* table_;
  ratelimit::GlobalRateLimiter* global_;
  std::vector<RateLimitCounts>* counts_;
};
using RateLimitStage = BasicRateLimitStage<LimitScope::process>;
using ManifestRateLimitStage = BasicRateLimitStage<LimitScope::manifest>;

// Where the manifest stage turns for what the snapshot's view of the manifest store lacks: the
// worker, which asks the store on the control thread. Worker thread only.
class ManifestFetcher {
 public:
  // Wakes `waiter` once the store has published what it knows of `key` (a stored key, "p/m/e"; ""
  // for the index itself, before it was first read).
  virtual void await(const std::string& key, Waiter& waiter) = 0;
  // `key`'s copy is due for refresh: the store fetches it in the background.
  virtual void refresh(const std::string& key) = 0;

 protected:
  ~ManifestFetcher() = default;
};

struct ManifestCounts {
  std::uint64_t stored_hits = 0;     // a stored manifest served from L1
  std::uint64_t stored_misses = 0;   // a request waited for a stored manifest's fetch
  std::uint64_t stale_served = 0;    // an expired copy served (its fetch failed)
  std::uint64_t embedded_fallbacks = 0;  // a stored key matched but the store could not deliver it
};

// Resolves the request's manifest from the path (/{project}/{module}/...) and the environment header:
// the most specific stored manifest (the manifest store, docs/manifests.md) when one matches, else
// the most specific embedded one. A stored manifest not in L1 yet suspends the request until the
// store has it (or has given up: then the embedded ones serve).
struct ManifestStage {
  ManifestFetcher* fetcher = nullptr;
  ManifestCounts* counts = nullptr;
  Verdict on_request(RequestContext& ctx) noexcept;
  void on_complete(RequestContext&) noexcept {}
};

// What a worker knows of its own load: requests in flight (kept by the sessions) and the level the
// worker's tick derives from its event-loop lag and the process's memory.
struct LoadMonitor {
  std::uint32_t inflight = 0;
  std::uint8_t tick_level = 0;  // 0 normal, 1 over a threshold, 2 over 1.5x
  std::uint64_t shed = 0;       // requests refused
  static std::uint8_t level_of(double value, double limit) noexcept {
    return limit <= 0 ? 0 : value > limit * 1.5 ? 2 : value > limit ? 1 : 0;
  }
};

// Load shedding: at level 1 `low` manifests get 503 + Retry-After, at level 2 `normal` ones too;
// `high` never. Recovers by itself as the signals fall.
class LoadShedStage {
 public:
  explicit LoadShedStage(LoadMonitor& monitor) : monitor_(&monitor) {}
  Verdict on_request(RequestContext& ctx) noexcept;
  void on_complete(RequestContext&) noexcept {}

 private:
  LoadMonitor* monitor_;
};

// Circuit breaking per endpoint. Admission happens in the pick (an open breaker takes its
// endpoint out of the rotation, a half-open one admits bounded probes); this stage feeds every
// final outcome back to the breaker and the outlier detector. Attempts that were retried are
// reported by the exchange (proxy/exchange.hpp) as they fail.
// It also enforces the cluster's max_requests (503 at once beyond it) for the whole process.
class BreakerStage {
 public:
  BreakerStage(UpstreamHealth& health, upstream::ClusterLoad* clusters) : health_(&health), clusters_(clusters) {}
  Verdict on_request(RequestContext& ctx) noexcept;
  void on_complete(RequestContext& ctx) noexcept;
  // The upstream answered 101: the attempt is a success for the breaker now (a half-open probe
  // must not stay taken for the tunnel's whole life) and the request leaves max_requests; the
  // tunnel that follows is no request in flight. on_complete later has nothing left to do.
  void on_tunnel(RequestContext& ctx) noexcept;
  upstream::ClusterLoad* clusters() noexcept { return clusters_; }

 private:
  void release_slots(RequestContext& ctx) noexcept;
  void report(RequestContext& ctx, Error outcome, unsigned status) noexcept;

  UpstreamHealth* health_;
  upstream::ClusterLoad* clusters_;
};

// Chooses the endpoint by the manifest's balancing policy (round robin, weighted, least
// connections, latency aware, consistent hash, sticky; priority levels fail over) among those not
// tried yet for this request, whose breaker admits a request and that are not ejected (when all the
// untried ones are ejected, ejection is ignored: better a suspect endpoint than none). None left: 503 with Retry-After from the first
// breaker to half-open.
class PickStage {
 public:
  explicit PickStage(UpstreamHealth& health) : health_(&health) {}
  Verdict on_request(RequestContext& ctx) noexcept;
  void on_complete(RequestContext&) noexcept {}

 private:
  UpstreamHealth* health_;
  std::vector<std::uint64_t> refused_;  // on_request's scratch: bit k, endpoint k refused this pick
};

using RequestPipeline =
    Pipeline<RateLimitStage, ManifestStage, ManifestRateLimitStage, LoadShedStage, BreakerStage, PickStage>;

}  // namespace frontdoor::pipeline
