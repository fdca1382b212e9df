#include "frontdoor/server/metrics.hpp"

#include "frontdoor/server/json.hpp"

#include <fmt/format.h>

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

Metrics collect_metrics(const std::vector<std::unique_ptr<Worker>>& workers, const resilience::LocalLimitTables& tables,
                        const upstream::ClusterLoad& clusters, std::chrono::milliseconds timeout) {
  // Every worker is asked at once and adds its share to one Metrics under a mutex (taken only here,
  // never per request). At the deadline the collection is closed: a worker answering later adds
  // nothing, and the ones that did not answer are counted as missing.
  struct Collection {
    std::mutex mutex;
    std::condition_variable answered;
    Metrics metrics;
    unsigned answers = 0;
    bool closed = false;
  };
  auto collection = std::make_shared<Collection>();
  for (const auto& worker : workers) {
    Worker* w = worker.get();
    boost::asio::post(w->io(), [w, collection] {
      std::lock_guard lock(collection->mutex);
      if (collection->closed) return;
      w->add_metrics(collection->metrics);
      ++collection->answers;
      collection->answered.notify_all();
    });
  }
  std::unique_lock lock(collection->mutex);
  collection->answered.wait_for(lock, timeout, [&] { return collection->answers == workers.size(); });
  collection->closed = true;
  Metrics m = std::move(collection->metrics);
  const unsigned missing = static_cast<unsigned>(workers.size()) - collection->answers;
  m.workers_missing = missing;
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
