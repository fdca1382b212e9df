#include "frontdoor/server/metrics.hpp"

#include "frontdoor/server/json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <mutex>

#include "frontdoor/server/log_writer.hpp"
#include "frontdoor/upstream/cluster_load.hpp"
#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

std::string Metrics::to_json() const {
  std::string j = fmt::format("{{\"workers\":{},\"workers_missing\":{},", workers, workers_missing);
  for (const auto& counter : stats::kWorkerCounters)
    j += fmt::format("\"{}\":{},", counter.metric.json, stats[counter.id]);
  j += fmt::format("\"shed\":{},", shed);
  j += "\"responses\":{";
  for (std::size_t i = 0; i < stats.responses_by_class.size(); ++i)
    j += fmt::format("{}\"{}\":{}", i ? "," : "", i == 0 ? std::string("none") : fmt::format("{}xx", i),
                     stats.responses_by_class[i]);
  j += "},\"errors\":{";
  bool first = true;
  for (std::size_t i = 1; i < stats.errors.size(); ++i) {
    if (stats.errors[i] == 0) continue;
    j += fmt::format("{}{}:{}", first ? "" : ",", json_string(error_info(static_cast<Error>(i)).label),
                     stats.errors[i]);
    first = false;
  }
  j += "},\"rate_limits\":[";
  for (std::size_t i = 0; i < rate_limits.size(); ++i) {
    const auto& r = rate_limits[i];
    j += fmt::format("{}{{\"limit\":{},\"manifest\":{},\"allowed\":{},\"refused\":{}}}", i ? "," : "",
                     json_string(r.limit), json_string(r.manifest), r.allowed, r.refused);
  }
  j += "],\"endpoints\":[";
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    const auto& e = endpoints[i];
    j += fmt::format(
        "{}{{\"endpoint\":{},\"breaker_opened\":{},\"breaker_closed\":{},\"breaker_rejected\":{},"
        "\"breakers_open\":{},\"in_flight\":{}}}",
        i ? "," : "", json_string(e.endpoint), e.breaker_opened, e.breaker_closed, e.breaker_rejected,
        e.breakers_open, e.in_flight);
  }
  j += "],\"manifests\":[";
  for (std::size_t i = 0; i < manifests.size(); ++i) {
    const auto& m = manifests[i];
    j += fmt::format(
        "{}{{\"manifest\":{},\"ejections\":{},\"retries\":{},\"retries_exhausted\":{},\"requests_in_flight\":{},"
        "\"connections\":{},\"pending\":{}}}",
        i ? "," : "", json_string(m.manifest), m.ejections, m.retries, m.retries_exhausted, m.requests_in_flight,
        m.connections, m.pending);
  }
  j += fmt::format(
      "],\"global_rate_limit\":{{\"fetches\":{},\"fetch_failures\":{},\"waits\":{},\"refused_locally\":{},"
      "\"unavailable\":{},\"table_full\":{},\"evicted\":{}}},\"redis\":{{\"connected\":{},\"commands\":{},\"failed\":{},"
      "\"timeouts\":{},\"connects\":{},\"connect_failures\":{}}},\"local_limit_tables\":{{\"evictions\":{},"
      "\"contention\":{}}}}}",
      global_limiter.fetches, global_limiter.fetch_failures, global_limiter.waits, global_limiter.refused_locally,
      global_limiter.unavailable, global_limiter.table_full, global_limiter.evicted, redis_connected, redis.commands, redis.failed,
      redis.timeouts, redis.connects, redis.connect_failures, local_limit_tables.evictions,
      local_limit_tables.contention);
  return j;
}

void add_share(Metrics& into, const Metrics& share) {
  into.workers += share.workers;
  into.stats += share.stats;
  into.requests += share.requests;
  into.active_requests += share.active_requests;
  into.open_connections = std::max(into.open_connections, share.open_connections);  // whole process
  if (into.routes.size() < share.routes.size()) into.routes = share.routes;
  into.shed += share.shed;
  into.manifest_lookups.stored_hits += share.manifest_lookups.stored_hits;
  into.manifest_lookups.stored_misses += share.manifest_lookups.stored_misses;
  into.manifest_lookups.stale_served += share.manifest_lookups.stale_served;
  into.manifest_lookups.embedded_fallbacks += share.manifest_lookups.embedded_fallbacks;
  // Series by index, labelled by the first share that has them (copied whole); a share whose label
  // differs there (another snapshot) adds nothing to that series.
  const auto line_up = [](auto& mine, const auto& theirs, auto same, auto add) {
    const std::size_t had = mine.size();
    for (std::size_t k = 0; k < std::min(had, theirs.size()); ++k)
      if (same(mine[k], theirs[k])) add(mine[k], theirs[k]);
    for (std::size_t k = had; k < theirs.size(); ++k) mine.push_back(theirs[k]);
  };
  line_up(
      into.rate_limits, share.rate_limits,
      [](const RateLimitMetrics& a, const RateLimitMetrics& b) { return a.limit == b.limit && a.manifest == b.manifest; },
      [](RateLimitMetrics& a, const RateLimitMetrics& b) {
        a.allowed += b.allowed;
        a.refused += b.refused;
      });
  line_up(
      into.endpoints, share.endpoints, [](const EndpointMetrics& a, const EndpointMetrics& b) { return a.endpoint == b.endpoint; },
      [](EndpointMetrics& a, const EndpointMetrics& b) {
        a.breaker_opened += b.breaker_opened;
        a.breaker_closed += b.breaker_closed;
        a.breaker_rejected += b.breaker_rejected;
        a.breakers_open += b.breakers_open;
        a.in_flight += b.in_flight;
      });
  line_up(
      into.manifests, share.manifests, [](const ManifestMetrics& a, const ManifestMetrics& b) { return a.manifest == b.manifest; },
      [](ManifestMetrics& a, const ManifestMetrics& b) {
        a.ejections += b.ejections;
        a.retries += b.retries;
        a.retries_exhausted += b.retries_exhausted;
      });
  into.global_limiter += share.global_limiter;
  into.redis += share.redis;
  into.redis_connected += share.redis_connected;
}

Metrics collect_metrics(const std::vector<std::unique_ptr<Worker>>& workers, const resilience::LocalLimitTables& tables,
                        const upstream::ClusterLoad& clusters, std::chrono::milliseconds timeout, MetricsShares* shares) {
  // Every worker is asked at once and puts its share in its own slot under a mutex (taken only
  // here, never per request). At the deadline the collection is closed: a worker answering later
  // adds nothing, and the ones that did not answer are counted as missing.
  struct Collection {
    std::mutex mutex;
    std::condition_variable answered;
    std::vector<Metrics> slots;
    std::vector<bool> in;
    unsigned awaited = 0;  // answers still waited for (workers not missing last time)
    bool closed = false;
  };
  const std::size_t n = workers.size();
  if (shares != nullptr && shares->last.size() != n) {
    shares->last.assign(n, Metrics{});
    shares->missing.assign(n, false);
  }
  auto collection = std::make_shared<Collection>();
  collection->slots.resize(n);
  collection->in.assign(n, false);
  for (std::size_t i = 0; i < n; ++i)
    if (shares == nullptr || !shares->missing[i]) ++collection->awaited;
  for (std::size_t i = 0; i < n; ++i) {
    Worker* w = workers[i].get();
    const bool awaited = shares == nullptr || !shares->missing[i];
    boost::asio::post(w->io(), [w, i, awaited, collection] {
      std::lock_guard lock(collection->mutex);
      if (collection->closed) return;
      w->add_metrics(collection->slots[i]);
      collection->in[i] = true;
      if (awaited) --collection->awaited;
      collection->answered.notify_all();
    });
  }
  std::unique_lock lock(collection->mutex);
  collection->answered.wait_for(lock, timeout, [&] { return collection->awaited == 0; });
  collection->closed = true;
  Metrics m;
  for (std::size_t i = 0; i < n; ++i) {
    if (collection->in[i]) {
      add_share(m, collection->slots[i]);
      if (shares != nullptr) shares->last[i] = std::move(collection->slots[i]);
    } else {
      ++m.workers_missing;
      if (shares != nullptr) add_share(m, shares->last[i]);
    }
    if (shares != nullptr) shares->missing[i] = !collection->in[i];
  }
  m.stats[stats::Counter::access_log_dropped_lines] += LogWriter::lost_lines_total().load(std::memory_order_relaxed);
  // Ids no manifest lists now (an address gone, its id not yet given to another): no series.
  std::erase_if(m.endpoints, [](const EndpointMetrics& e) { return e.endpoint.empty(); });
  for (std::size_t i = 0; i < m.manifests.size() && i < clusters.size(); ++i) {
    m.manifests[i].requests_in_flight = clusters.requests(i);
    m.manifests[i].connections = clusters.connections(i);
    m.manifests[i].pending = clusters.pending(i);
  }
  const auto gcra = tables.gcra.counters();
  const auto windows = tables.windows.counters();
  m.local_limit_tables = {gcra.evictions + windows.evictions, gcra.contention + windows.contention};
  return m;
}

}  // namespace frontdoor::server
