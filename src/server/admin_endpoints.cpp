#include "frontdoor/server/admin_endpoints.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "frontdoor/server/json.hpp"
#include "frontdoor/server/status_page.hpp"
#include "frontdoor/server/worker.hpp"
#include "frontdoor/stats/counters.hpp"
#include "frontdoor/version.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  double pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Families in order of first use; samples added under a family name.
class Exposition {
 public:
  // `labels`: a spec's label text ("endpoint,to=\"open\""): names without a value take `values`, in order.
  void add(std::string_view family, std::string_view help, prometheus::MetricType type, std::string_view labels,
           std::initializer_list<std::string_view> values, double value) {
    auto [it, inserted] = index_.try_emplace(std::string(family), families_.size());
    if (inserted) families_.push_back({std::string(family), std::string(help), type, {}});
    prometheus::ClientMetric sample;
    auto next = values.begin();
    while (!labels.empty()) {
      const auto comma = labels.find(',');
      std::string_view item = labels.substr(0, comma);
      labels = comma == std::string_view::npos ? std::string_view() : labels.substr(comma + 1);
      const auto eq = item.find('=');
      if (eq == std::string_view::npos) {
        sample.label.push_back({std::string(item), next != values.end() ? std::string(*next++) : std::string()});
      } else {
        std::string_view v = item.substr(eq + 1);
        if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
        sample.label.push_back({std::string(item.substr(0, eq)), std::string(v)});
      }
    }
    if (type == prometheus::MetricType::Counter) sample.counter.value = value;
    else sample.gauge.value = value;
    families_[it->second].metric.push_back(std::move(sample));
  }
  // A figure of stats::kMetrics, by its JSON field.
  void add(std::string_view json, std::initializer_list<std::string_view> values, double value) {
    for (const auto& spec : stats::kMetrics)
      if (spec.json == json) return add(spec.prometheus, spec.help, type_of(spec), spec.labels, values, value);
  }
  void histogram(std::string_view family, std::string_view help, std::string_view label, std::string_view value,
                 const stats::RequestTally::Histogram& h) {
    auto [it, inserted] = index_.try_emplace(std::string(family), families_.size());
    if (inserted) families_.push_back({std::string(family), std::string(help), prometheus::MetricType::Histogram, {}});
    prometheus::ClientMetric sample;
    sample.label.push_back({std::string(label), std::string(value)});
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < stats::RequestTally::kBuckets.size(); ++b) {
      cumulative += h.counts[b];
      sample.histogram.bucket.push_back({cumulative, stats::RequestTally::kBuckets[b]});
    }
    sample.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
    sample.histogram.sample_count = h.count;
    sample.histogram.sample_sum = h.sum;
    families_[it->second].metric.push_back(std::move(sample));
  }
  std::string text() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, families_);
    return out.str();
  }
  static prometheus::MetricType type_of(const stats::MetricSpec& spec) {
    return spec.type == stats::MetricType::counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
  }

 private:
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

void histograms(Exposition& x, const Metrics& m) {
  const auto& durations = m.requests.durations();
  for (std::size_t route = 0; route < durations.size(); ++route) {
    if (durations[route].count == 0) continue;
    x.histogram("fd_request_duration_seconds", "Request duration, first byte of the head to the last of the response.",
                "endpoint", route < m.routes.size() ? m.routes[route] : "none", durations[route]);
  }
}

// The manifest store's tiers: L1 (the workers' lookups) and each remote tier's fetches.
void store_metrics(Exposition& x, const Metrics& m, const store::ManifestStore& manifest_store) {
  using prometheus::MetricType;
  const auto& c = manifest_store.counters();
  const auto& l1 = m.manifest_lookups;
  constexpr std::string_view kLookups = "Stored-manifest lookups by cache tier and result.";
  const auto tier = [&](std::string_view name, std::uint64_t hits, std::uint64_t misses, std::uint64_t errors) {
    x.add("fd_manifest_cache_requests_total", kLookups, MetricType::Counter, "tier,result=\"hit\"", {name},
          static_cast<double>(hits));
    x.add("fd_manifest_cache_requests_total", kLookups, MetricType::Counter, "tier,result=\"miss\"", {name},
          static_cast<double>(misses));
    if (name != "l1")
      x.add("fd_manifest_cache_requests_total", kLookups, MetricType::Counter, "tier,result=\"error\"", {name},
            static_cast<double>(errors));
    const auto total = hits + misses + errors;
    x.add("fd_cache_hit_ratio", "Hits over lookups since start, by manifest cache tier (0 before any).",
          MetricType::Gauge, "tier", {name}, total == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(total));
  };
  tier("l1", l1.stored_hits, l1.stored_misses, 0);
  tier("redis", c.redis.hits, c.redis.misses, c.redis.errors);
  tier("postgres", c.postgres.hits, c.postgres.misses, c.postgres.errors);
  constexpr std::string_view kLoad = "Time to fetch a stored manifest, by source, answered or not.";
  x.histogram("fd_module_load_seconds", kLoad, "source", "redis", c.redis.load_seconds);
  x.histogram("fd_module_load_seconds", kLoad, "source", "postgres", c.postgres.load_seconds);
  const auto counter = [&](std::string_view name, std::string_view help, std::uint64_t value) {
    x.add(name, help, MetricType::Counter, "", {}, static_cast<double>(value));
  };
  counter("fd_manifest_stale_served_total", "Requests served an expired stored manifest because its fetch failed.",
          l1.stale_served);
  counter("fd_manifest_embedded_fallbacks_total",
          "Requests whose stored manifest the store could not deliver: the embedded manifests served them.",
          l1.embedded_fallbacks);
  counter("fd_manifest_invalid_documents_total", "Stored documents refused by the daemon's rules (never served).",
          c.invalid_documents);
  counter("fd_manifest_notifications_total", "Changes announced by PostgreSQL NOTIFY.", c.notifications);
  counter("fd_manifest_evictions_total", "Loaded manifests evicted beyond manifest_cache.max_entries / max_bytes.",
          c.evictions);
  counter("fd_manifest_refreshes_total", "Fetches of a loaded manifest: refresh ahead of expiry or a change.",
          c.refreshes);
  x.add("fd_manifest_index_loads_total", "Reads of the index of stored keys, by result.", MetricType::Counter,
        "result=\"ok\"", {}, static_cast<double>(c.index_loads));
  x.add("fd_manifest_index_loads_total", "", MetricType::Counter, "result=\"failed\"", {},
        static_cast<double>(c.index_failures));
  const auto s = manifest_store.status();
  x.add("fd_manifest_store_keys", "Stored keys in the index.", MetricType::Gauge, "", {}, static_cast<double>(s.keys));
  x.add("fd_manifest_store_loaded", "Stored manifests in L1.", MetricType::Gauge, "", {}, static_cast<double>(s.loaded));
  x.add("fd_manifest_store_loaded_bytes", "Bytes of the documents in L1.", MetricType::Gauge, "", {},
        static_cast<double>(s.loaded_bytes));
  constexpr std::string_view kUp = "1 while the manifest store reaches the dependency.";
  x.add("fd_manifest_store_up", kUp, MetricType::Gauge, "dependency=\"postgres\"", {}, s.postgres_ok ? 1 : 0);
  x.add("fd_manifest_store_up", kUp, MetricType::Gauge, "dependency=\"postgres_listen\"", {}, s.listening ? 1 : 0);
  x.add("fd_manifest_store_up", kUp, MetricType::Gauge, "dependency=\"redis\"", {}, s.redis_connected ? 1 : 0);
  constexpr std::string_view kBreaker = "1 while the manifest store's breaker for the tier is open.";
  x.add("fd_manifest_store_breaker_open", kBreaker, MetricType::Gauge, "tier=\"postgres\"", {},
        s.postgres_breaker_open ? 1 : 0);
  x.add("fd_manifest_store_breaker_open", kBreaker, MetricType::Gauge, "tier=\"redis\"", {},
        s.redis_breaker_open ? 1 : 0);
}

// The store's state, and per tier (l1: the workers' lookups; redis, postgres: the fetches) its
// figures; `lookups` from the last collection (null: left out).
std::string store_json(const store::ManifestStore* manifest_store, const pipeline::ManifestCounts* lookups) {
  if (manifest_store == nullptr) return "{\"configured\":false}";
  const auto s = manifest_store->status();
  const auto& c = manifest_store->counters();
  std::string tiers;
  if (lookups != nullptr)
    tiers = fmt::format("{{\"tier\":\"l1\",\"up\":true,\"hits\":{},\"misses\":{},\"errors\":0}},",
                        lookups->stored_hits, lookups->stored_misses);
  tiers += fmt::format("{{\"tier\":\"redis\",\"up\":{},\"hits\":{},\"misses\":{},\"errors\":{}}},"
                       "{{\"tier\":\"postgres\",\"up\":{},\"hits\":{},\"misses\":{},\"errors\":{}}}",
                       s.redis_connected, c.redis.hits, c.redis.misses, c.redis.errors, s.postgres_ok && s.listening,
                       c.postgres.hits, c.postgres.misses, c.postgres.errors);
  return fmt::format("{{\"configured\":true,\"index_known\":{},\"index_source\":{},\"keys\":{},\"loaded\":{},"
                     "\"loaded_bytes\":{},\"postgres_ok\":{},\"listening\":{},\"redis_connected\":{},\"tiers\":[{}]}}",
                     s.index_known, json_string(s.index_source), s.keys, s.loaded, s.loaded_bytes, s.postgres_ok,
                     s.listening, s.redis_connected, tiers);
}

}  // namespace

AdminEndpoints::AdminEndpoints(asio::io_context& control, asio::ip::tcp::acceptor acceptor,
                               const std::vector<std::unique_ptr<Worker>>& workers,
                               const resilience::LocalLimitTables& tables, const upstream::ClusterLoad& clusters,
                               const config::Config& config)
    : control_(control), server_(control, std::move(acceptor)), workers_(workers), tables_(tables),
      clusters_(clusters), config_(config), heartbeat_timer_(control), sample_timer_(control) {
  server_.route("/health", [this](const admin::Request&) { return health(); });
  server_.route("/ready", [this](const admin::Request&) { return ready(); });
  server_.route("/metrics", [this](const admin::Request&) { return metrics(); });
  server_.route("/", [](const admin::Request&) {
    return admin::Response{200, "text/html; charset=utf-8", std::string(kStatusPage)};
  });
  server_.route("/status.json", [this](const admin::Request&) { return status_json(); });
}

void AdminEndpoints::enable_reload(ConfigReloader& reloader, std::string token) {
  reloader_ = &reloader;
  server_.post_route("/reload", [this, expected = "Bearer " + token, open = token.empty()](const admin::Request& request) {
    // Compared in constant time (a byte-by-byte compare tells a guesser how far it got), and every
    // refusal counted, said in the log at most once a minute.
    const auto& given = request.authorization;
    if (!open && (given.size() != expected.size() || CRYPTO_memcmp(given.data(), expected.data(), given.size()) != 0)) {
      ++reload_refusals_;
      const auto now = Clock::now();
      if (now - last_refusal_log_ >= std::chrono::minutes(1)) {
        last_refusal_log_ = now;
        spdlog::warn("admin listener: POST /reload refused: missing or wrong bearer token ({} so far)", reload_refusals_);
      }
      return admin::Response{401, "text/plain; charset=utf-8", "401 unauthorized: POST /reload needs the bearer token\n"};
    }
    const ReloadResult result = reloader_->reload();
    return admin::Response{result.ok ? 200u : 422u, "application/json", result.json()};
  });
}

void AdminEndpoints::start() {
  cpu_seconds_ = cpu_seconds();
  server_.start();
  heartbeat();
  sample();
}

void AdminEndpoints::stop() noexcept {
  stopped_ = true;
  server_.stop();
  heartbeat_timer_.cancel();
  sample_timer_.cancel();
}

void AdminEndpoints::heartbeat() {
  const auto at = now_ms();
  const auto bound = std::chrono::duration_cast<std::chrono::milliseconds>(kStuckAfter).count();
  posted_.push_back(at);
  while (posted_.size() >= 2 && at - posted_[1] > bound) posted_.pop_front();  // the newest one over kept
  for (const auto& w : workers_) w->post_heartbeat(at);
  heartbeat_timer_.expires_after(kHeartbeatEvery);
  heartbeat_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) heartbeat();
  });
}

void AdminEndpoints::sample() {
  const auto now = Clock::now();
  const Metrics m = collect_metrics(workers_, tables_, clusters_, std::chrono::milliseconds(500), &shares_);
  // A stuck worker counts with its last share (collect_metrics): the count never goes back, and
  // the rate goes on (it was frozen at its last value until every worker answered again).
  samples_.push_back({now, m.stats[stats::Counter::requests]});
  // Keep one sample at or beyond the window's far edge: the rate spans the whole window.
  while (samples_.size() > 2 && samples_[1].at <= now - config_.admin.rate_window) samples_.pop_front();
  redis_connected_ = m.redis_connected;
  upstream_endpoints_ = m.endpoints.size();
  upstream_endpoints_open_ = static_cast<std::size_t>(
      std::count_if(m.endpoints.begin(), m.endpoints.end(), [](const auto& e) { return e.breakers_open > 0; }));
  const double cpu = cpu_seconds();
  cpu_percent_ = 100.0 * (cpu - cpu_seconds_) / 1.0;
  cpu_seconds_ = cpu;
  sample_timer_.expires_after(std::chrono::seconds(1));
  sample_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) sample();
  });
}

std::string AdminEndpoints::stuck_workers_json() const {
  const auto now = now_ms();
  const auto bound = std::chrono::duration_cast<std::chrono::milliseconds>(kStuckAfter).count();
  std::int64_t overdue = 0;  // the newest heartbeat posted over kStuckAfter ago
  for (auto it = posted_.rbegin(); it != posted_.rend() && overdue == 0; ++it)
    if (now - *it > bound) overdue = *it;
  std::string stuck;
  for (const auto& w : workers_) {
    if (w->finished()) continue;  // drained and done: not stuck
    // Stuck: it has not run a heartbeat posted over kStuckAfter ago. Measured against what was
    // posted, not against the clock: a control thread that stalled (posting none) made every worker
    // look stuck.
    if (overdue == 0 || w->last_heartbeat_ms() >= overdue) continue;
    const auto age = now - w->last_heartbeat_ms();
    stuck += fmt::format("{}{{\"worker\":{},\"heartbeat_ms_ago\":{}}}", stuck.empty() ? "" : ",", w->index(), age);
  }
  return stuck;
}

admin::Response AdminEndpoints::health() const {
  const std::string stuck = stuck_workers_json();
  if (stuck.empty()) return {200, "application/json", fmt::format("{{\"status\":\"ok\",\"workers\":{}}}\n", workers_.size())};
  return {503, "application/json", "{\"status\":\"stuck\",\"workers\":[" + stuck + "]}\n"};
}

admin::Response AdminEndpoints::ready() const {
  const bool redis = config_.redis.enabled();
  const auto& requires_list = config_.admin.ready_requires;
  const bool redis_required = std::find(requires_list.begin(), requires_list.end(), "redis") != requires_list.end();
  // Redis counts as down when no worker has a connection to it (at the last 1 s sample).
  const bool redis_down = redis && redis_connected_ == 0;
  const bool postgres_required =
      std::find(requires_list.begin(), requires_list.end(), "postgres") != requires_list.end();
  // PostgreSQL counts as down when its LISTEN connection (watched all the time) or its last query
  // failed.
  const auto pg = store_ != nullptr ? store_->status() : store::StoreStatus{};
  const bool postgres_down = !pg.postgres_ok || !pg.listening;
  // A stuck worker still gets its share of new connections (the kernel spreads them over every
  // SO_REUSEPORT socket), and those hang: out of the Service at once, long before liveness restarts.
  const std::string stuck = stuck_workers_json();
  const char* status = draining_                                                       ? "draining"
                       : !stuck.empty()                                                ? "worker_stuck"
                       : (redis_required && redis_down) || (postgres_required && postgres_down) ? "dependency_down"
                                                                                       : "ready";
  const std::string body = fmt::format(
      "{{\"status\":\"{}\",\"workers\":{},\"stuck_workers\":[{}],\"redis\":{{\"configured\":{},\"connected_workers\":{},"
      "\"required\":{}}},\"postgres\":{{\"configured\":{},\"up\":{},\"required\":{}}},\"manifest_store\":{},"
      "\"upstreams\":{{\"endpoints\":{},\"breaker_open\":{}}}}}\n",
      status, workers_.size(), stuck, redis ? "true" : "false", redis_connected_, redis_required ? "true" : "false",
      store_ != nullptr, !postgres_down, postgres_required, store_json(store_, nullptr), upstream_endpoints_,
      upstream_endpoints_open_);
  return {std::string_view(status) == "ready" ? 200u : 503u, "application/json", body};
}


admin::Response AdminEndpoints::status_json() {
  const Metrics m = collect_metrics(workers_, tables_, clusters_, std::chrono::milliseconds(1000), &shares_);
  std::string j = fmt::format("{{\"version\":{},\"ready\":{},\"workers\":{},\"requests_per_second\":{:.3f},"
                              "\"generation\":{},\"endpoints\":[",
                              json_string(kVersion), draining_ ? "false" : "true", m.workers, requests_per_second(),
                              reloader_ != nullptr ? reloader_->generation() : 1);
  for (std::size_t i = 0; i < m.endpoints.size(); ++i) {
    const auto& e = m.endpoints[i];
    j += fmt::format("{}{{\"endpoint\":{},\"breakers_open\":{},\"in_flight\":{},\"breaker_opened\":{},"
                     "\"breaker_rejected\":{}}}",
                     i ? "," : "", json_string(e.endpoint), e.breakers_open, e.in_flight, e.breaker_opened, e.breaker_rejected);
  }
  j += "],\"manifests\":[";
  for (std::size_t i = 0; i < m.manifests.size(); ++i) {
    const auto& mf = m.manifests[i];
    j += fmt::format("{}{{\"manifest\":{},\"ejections\":{},\"retries\":{},\"retries_exhausted\":{}}}", i ? "," : "",
                     json_string(mf.manifest), mf.ejections, mf.retries, mf.retries_exhausted);
  }
  j += "],\"rate_limits\":[";
  for (std::size_t i = 0; i < m.rate_limits.size(); ++i) {
    const auto& r = m.rate_limits[i];
    j += fmt::format("{}{{\"limit\":{},\"manifest\":{},\"allowed\":{},\"refused\":{}}}", i ? "," : "",
                     json_string(r.limit), json_string(r.manifest), r.allowed, r.refused);
  }
  j += "],\"manifest_store\":" + store_json(store_, &m.manifest_lookups) + ",\"reloads\":[";
  if (reloader_ != nullptr) {
    bool first = true;
    for (const auto& entry : reloader_->history()) {
      const auto at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(entry.at.time_since_epoch()).count();
      std::string body = entry.result.json();
      while (!body.empty() && body.back() == '\n') body.pop_back();
      j += fmt::format("{}{{\"at_ms\":{},{}", first ? "" : ",", at_ms, body.substr(1));
      first = false;
    }
  }
  j += "]}\n";
  return {200, "application/json", j};
}

double AdminEndpoints::requests_per_second() const {
  if (samples_.size() < 2) return 0;
  const auto span = std::chrono::duration<double>(samples_.back().at - samples_.front().at).count();
  return span > 0 ? static_cast<double>(samples_.back().requests - samples_.front().requests) / span : 0;
}

admin::Response AdminEndpoints::metrics() {
  using prometheus::MetricType;
  const Metrics m = collect_metrics(workers_, tables_, clusters_, std::chrono::milliseconds(1000), &shares_);
  Exposition x;
  for (const auto& c : stats::kWorkerCounters)
    x.add(c.metric.prometheus, c.metric.help, Exposition::type_of(c.metric), c.metric.labels, {},
          static_cast<double>(m.stats[c.id]));
  x.add("workers", {}, m.workers);
  x.add("workers_missing", {}, m.workers_missing);
  for (std::size_t i = 0; i < m.stats.responses_by_class.size(); ++i) {
    const std::string status_class = i == 0 ? std::string("none") : fmt::format("{}xx", i);
    x.add("responses", {status_class}, static_cast<double>(m.stats.responses_by_class[i]));
  }
  for (std::size_t i = 1; i < m.stats.errors.size(); ++i)
    x.add("errors", {error_info(static_cast<Error>(i)).label}, static_cast<double>(m.stats.errors[i]));
  x.add("shed", {}, static_cast<double>(m.shed));
  for (const auto& r : m.rate_limits) {
    x.add("rate_limits[].allowed", {r.limit, r.manifest}, static_cast<double>(r.allowed));
    x.add("rate_limits[].refused", {r.limit, r.manifest}, static_cast<double>(r.refused));
  }
  for (const auto& e : m.endpoints) {
    x.add("endpoints[].breaker_opened", {e.endpoint}, static_cast<double>(e.breaker_opened));
    x.add("endpoints[].breaker_closed", {e.endpoint}, static_cast<double>(e.breaker_closed));
    x.add("endpoints[].breaker_rejected", {e.endpoint}, static_cast<double>(e.breaker_rejected));
    x.add("endpoints[].breakers_open", {e.endpoint}, e.breakers_open);
    x.add("endpoints[].in_flight", {e.endpoint}, e.in_flight);
  }
  for (const auto& mf : m.manifests) {
    x.add("manifests[].ejections", {mf.manifest}, static_cast<double>(mf.ejections));
    x.add("manifests[].retries", {mf.manifest}, static_cast<double>(mf.retries));
    x.add("manifests[].retries_exhausted", {mf.manifest}, static_cast<double>(mf.retries_exhausted));
    x.add("manifests[].requests_in_flight", {mf.manifest}, mf.requests_in_flight);
    x.add("manifests[].connections", {mf.manifest}, mf.connections);
    x.add("manifests[].pending", {mf.manifest}, mf.pending);
  }
  const auto& g = m.global_limiter;
  x.add("global_rate_limit.fetches", {}, static_cast<double>(g.fetches));
  x.add("global_rate_limit.fetch_failures", {}, static_cast<double>(g.fetch_failures));
  x.add("global_rate_limit.waits", {}, static_cast<double>(g.waits));
  x.add("global_rate_limit.refused_locally", {}, static_cast<double>(g.refused_locally));
  x.add("global_rate_limit.unavailable", {}, static_cast<double>(g.unavailable));
  x.add("global_rate_limit.table_full", {}, static_cast<double>(g.table_full));
  x.add("global_rate_limit.evicted", {}, static_cast<double>(g.evicted));
  x.add("redis.connected", {}, m.redis_connected);
  x.add("redis.commands", {}, static_cast<double>(m.redis.commands));
  x.add("redis.failed", {}, static_cast<double>(m.redis.failed));
  x.add("redis.timeouts", {}, static_cast<double>(m.redis.timeouts));
  x.add("redis.connects", {}, static_cast<double>(m.redis.connects));
  x.add("redis.connect_failures", {}, static_cast<double>(m.redis.connect_failures));
  x.add("local_limit_tables.evictions", {}, static_cast<double>(m.local_limit_tables.evictions));
  x.add("local_limit_tables.contention", {}, static_cast<double>(m.local_limit_tables.contention));
  // Every request by method, route (the manifest's key: never a raw path) and status; durations.
  m.requests.each_count([&](std::uint8_t method, std::uint32_t route, unsigned status, std::uint64_t n) {
    const std::string code = status == 0 ? std::string("none") : std::to_string(status);
    x.add("fd_requests_total", "Requests finished, by method, route (manifest key) and status (none: no response).",
          MetricType::Counter, "method,endpoint,status",
          {stats::RequestTally::kMethods[method], route < m.routes.size() ? m.routes[route] : "none", code},
          static_cast<double>(n));
  });
  histograms(x, m);
  if (store_ != nullptr) store_metrics(x, m, *store_);
  x.add("fd_active_requests", "Requests in flight.", MetricType::Gauge, "", {}, static_cast<double>(m.active_requests));
  x.add("fd_open_connections", "Client connections open, whole process.", MetricType::Gauge, "", {},
        static_cast<double>(m.open_connections));
  // The process, and the HPA's metric.
  x.add("fd_memory_usage_bytes", "Resident memory of the process.", MetricType::Gauge, "", {}, resident_bytes());
  x.add("fd_cpu_usage_percent", "CPU used by the process over the last second, percent of one core.",
        MetricType::Gauge, "", {}, cpu_percent_);
  x.add("fd_build_info", "The running build: always 1.", MetricType::Gauge, "version", {kVersion}, 1);
  x.add("fd_ready", "1 while /ready answers 200.", MetricType::Gauge, "", {}, ready().status == 200 ? 1 : 0);
  if (listeners_ != nullptr) {
    for (const auto& [name, info] : *listeners_) {
      if (!info->tls || info->tls_validity.not_after == 0) continue;
      x.add("fd_tls_certificate_expiry_timestamp_seconds",
            "When the certificate a TLS listener serves expires (its notAfter), in seconds since the epoch.",
            MetricType::Gauge, "listener", {name}, static_cast<double>(info->tls_validity.not_after));
    }
  }
  if (reloader_ != nullptr) {
    x.add("fd_config_reloads_total", "Configuration reloads (SIGHUP, POST /reload), by result.", MetricType::Counter,
          "result=\"ok\"", {}, static_cast<double>(reloader_->succeeded()));
    x.add("fd_config_reloads_total", "", MetricType::Counter, "result=\"refused\"", {},
          static_cast<double>(reloader_->failed()));
    x.add("fd_config_generation", "The configuration serving: 1 at start, one more per reload.", MetricType::Gauge, "",
          {}, static_cast<double>(reloader_->generation()));
  }
  const double rate = requests_per_second();
  x.add("http_requests_per_second",
        "Requests per second over admin.rate_window, this pod: the HorizontalPodAutoscaler's Pods metric.",
        MetricType::Gauge, "", {}, rate);
  return {200, "text/plain; version=0.0.4; charset=utf-8", x.text()};
}

}  // namespace frontdoor::server
