#pragma once
// Metrics: the counters every worker keeps, summed across workers for a reader on another thread —
// the admin listener's /metrics and the JSON line the daemon logs on SIGUSR1.
// Each worker adds its share on its own thread (`Worker::add_metrics`, posted by `collect_metrics`),
// so the request path never writes shared memory or takes a lock for them. Every figure is a
// counter since start unless its name says otherwise; labels are bounded (limit, manifest and
// endpoint names come from the configuration).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/io/redis_client.hpp"
#include "frontdoor/pipeline/stages.hpp"
#include "frontdoor/ratelimit/global_limiter.hpp"
#include "frontdoor/resilience/rate_limiter.hpp"
#include "frontdoor/stats/counters.hpp"
#include "frontdoor/stats/request_tally.hpp"

namespace frontdoor::upstream {
class ClusterLoad;
}

namespace frontdoor::server {

class Worker;

struct RateLimitMetrics {
  std::string limit;
  std::string manifest;  // "" for a top-level limit
  std::uint64_t allowed = 0;
  std::uint64_t refused = 0;
};

struct EndpointMetrics {
  std::string endpoint;
  std::uint64_t breaker_opened = 0;    // transitions to open, all workers
  std::uint64_t breaker_closed = 0;
  std::uint64_t breaker_rejected = 0;  // requests an open breaker kept away
  std::uint32_t breakers_open = 0;     // gauge: workers whose breaker is open now
  std::uint32_t in_flight = 0;         // gauge
};

struct ManifestMetrics {
  std::string manifest;  // project/module/environment
  std::uint64_t ejections = 0;
  std::uint64_t retries = 0;            // admitted by the retry budget
  std::uint64_t retries_exhausted = 0;  // refused by it
  std::uint32_t requests_in_flight = 0;  // gauge, counted for manifests with max_requests
  std::uint32_t connections = 0;         // gauge, counted for manifests with max_connections
  std::uint32_t pending = 0;             // gauge: requests queued for one of those connections
};

struct Metrics {
  unsigned workers = 0;
  unsigned workers_missing = 0;  // did not answer in time (stuck): their last share stands in
  stats::WorkerCounters stats;             // summed
  stats::RequestTally requests;            // summed: by method, route and status; durations by route
  std::vector<std::string> routes;         // route names by RequestTally route (0: "none")
  std::uint64_t active_requests = 0;       // gauge
  std::uint64_t open_connections = 0;      // gauge, whole process
  std::uint64_t shed = 0;        // load shedding refusals
  pipeline::ManifestCounts manifest_lookups;  // stored manifests: L1 hits and misses
  std::vector<RateLimitMetrics> rate_limits;
  std::vector<EndpointMetrics> endpoints;  // those the current snapshot lists (collect_metrics)
  std::vector<ManifestMetrics> manifests;
  ratelimit::GlobalLimiterCounters global_limiter;
  io::RedisCounters redis;
  std::uint32_t redis_connected = 0;  // gauge: worker connections up
  resilience::LimiterTableCounters local_limit_tables;

  // One line of JSON, for logs and tests.
  std::string to_json() const;
};

// What collect_metrics keeps between collections, for its caller's thread. A worker that does not
// answer (stuck) is counted with the last share it gave: without it every counter dropped by that
// worker's share, which Prometheus reads as a counter reset (and rate() spikes when it answers
// again). A worker missing last time is not waited for again until it answers: its readers (the
// control thread's /health among them) would wait the whole timeout on every call.
struct MetricsShares {
  std::vector<Metrics> last;   // by worker index
  std::vector<bool> missing;   // by worker index: did not answer the last collection
};

// Adds one worker's share to `into`. Shares of one snapshot line up by index; one from another
// snapshot (a stuck worker's, after a reload) adds only where its series' labels agree.
void add_share(Metrics& into, const Metrics& share);

// From any thread but a worker's: asks every worker for its share and waits up to `timeout` in all.
// With `shares`, a worker that does not answer is counted with its last share.
Metrics collect_metrics(const std::vector<std::unique_ptr<Worker>>& workers,
                        const resilience::LocalLimitTables& tables, const upstream::ClusterLoad& clusters,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(1000),
                        MetricsShares* shares = nullptr);

}  // namespace frontdoor::server
