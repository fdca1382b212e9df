#pragma once
// AdminEndpoints: what the admin listener (admin::AdminServer) answers, on the control thread.
//   /health   liveness: 200 while every worker's event loop ran a heartbeat posted in the last
//             kStuckAfter, else 503 naming the stuck workers (a stuck worker cannot hide: the
//             endpoint is served by the control thread);
//   /ready    readiness: 200 once the listeners are up, 503 from the moment SIGTERM arrives (the
//             endpoint leaves the Service during server.drain_delay), while a worker is stuck, or
//             while a required dependency is down; a JSON body with the workers and dependencies;
//   /metrics  Prometheus text (prometheus-cpp's families and serializer): every figure of
//             stats/counters.hpp under its fd_ name, the process's memory and CPU, a build-info
//             gauge, and http_requests_per_second — requests over admin.rate_window, per pod, the
//             HorizontalPodAutoscaler's Pods metric.
// Control thread only.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/admin/admin_server.hpp"
#include "frontdoor/config/config.hpp"
#include "frontdoor/server/metrics.hpp"
#include "frontdoor/store/manifest_store.hpp"
#include "frontdoor/server/reloader.hpp"

namespace frontdoor::server {

class Worker;
struct ListenerInfo;

class AdminEndpoints {
 public:
  static constexpr auto kHeartbeatEvery = std::chrono::milliseconds(500);
  static constexpr auto kStuckAfter = std::chrono::seconds(2);

  AdminEndpoints(boost::asio::io_context& control, boost::asio::ip::tcp::acceptor acceptor,
                 const std::vector<std::unique_ptr<Worker>>& workers, const resilience::LocalLimitTables& tables,
                 const upstream::ClusterLoad& clusters, const config::Config& config);
  void start();
  void stop() noexcept;
  // SIGTERM: /ready answers 503 from now on.
  void set_draining() noexcept { draining_ = true; }
  // Its tiers in /metrics, /ready and /status.json. Control thread, like every call here.
  void set_manifest_store(const store::ManifestStore* manifest_store) noexcept { store_ = manifest_store; }
  // The listeners serving now, by name (their certificates' expiry in /metrics); outlives this.
  void set_listeners(const std::map<std::string, ListenerInfo*>& live) noexcept { listeners_ = &live; }
  // POST /reload runs `reloader` (which outlives this); with a token, only for `Bearer <token>`.
  void enable_reload(ConfigReloader& reloader, std::string token);
  std::uint16_t port() const { return server_.port(); }

  admin::Response health() const;
  admin::Response ready() const;
  admin::Response metrics();
  admin::Response status_json();

 private:
  void heartbeat();
  void sample();
  // The workers whose event loop has not run a heartbeat for kStuckAfter, as JSON objects ("" if none).
  std::string stuck_workers_json() const;
  double requests_per_second() const;

  boost::asio::io_context& control_;
  admin::AdminServer server_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  const resilience::LocalLimitTables& tables_;
  const upstream::ClusterLoad& clusters_;
  const config::Config& config_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer sample_timer_;
  bool draining_ = false;
  ConfigReloader* reloader_ = nullptr;
  std::uint64_t reload_refusals_ = 0;  // POST /reload without the right token
  std::chrono::steady_clock::time_point last_refusal_log_{};
  const store::ManifestStore* store_ = nullptr;
  const std::map<std::string, ListenerInfo*>* listeners_ = nullptr;
  std::deque<std::int64_t> posted_;  // heartbeats posted to the workers: those of the last kStuckAfter, and one more
  std::size_t upstream_endpoints_ = 0;       // at the last sample
  std::size_t upstream_endpoints_open_ = 0;  // of which with a breaker open on some worker
  bool stopped_ = false;
  // Requests served so far, once a second over admin.rate_window: http_requests_per_second.
  struct Sample {
    std::chrono::steady_clock::time_point at;
    std::uint64_t requests;
  };
  std::deque<Sample> samples_;
  MetricsShares shares_;  // every collection's (sample, /metrics, /status.json): one set of last shares
  std::uint32_t redis_connected_ = 0;  // at the last sample
  double cpu_percent_ = 0;
  double cpu_seconds_ = 0;
};

}  // namespace frontdoor::server
