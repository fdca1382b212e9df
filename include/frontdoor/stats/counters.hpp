#pragma once
// The one declaration of every figure the daemon reports. `kWorkerCounters` defines the per-worker
// counters themselves (WorkerCounters is indexed by it); `kMetrics` lists every reported figure —
// those counters and the ones other areas keep (breakers, limits, Redis...) — with its JSON field in
// the SIGUSR1 line and its Prometheus name. The JSON writer iterates these tables, and tests check
// that the JSON carries every field and that docs/metrics.md lists every name.
//
// WorkerCounters: plain integers written by one worker thread only; the reader sums them across
// workers on the worker threads themselves (server::collect_metrics), so no atomic is needed.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "frontdoor/core/error.hpp"

namespace frontdoor::stats {

enum class Counter : std::uint8_t {
  connections_accepted,
  connections_rejected,
  connections_reclaimed,
  connections_refused_per_client,
  requests,
  upstream_connects,
  upstream_reuses,
  upstream_retries,
  upstream_stale_retries,
  bytes_from_clients,
  bytes_to_clients,
  proxy_protocol_errors,
  access_log_dropped_lines,
  tunnels_opened,
  tunnels_closed,
  silent_connections_closed,
  tls_handshake_timeouts,
  proxy_header_timeouts,
  tls_handshake_plain_http,
  tls_handshake_closed,
  tls_handshake_failed,
};

enum class MetricType : std::uint8_t { counter, gauge };

struct MetricSpec {
  std::string_view json;        // field of the SIGUSR1 JSON line ("a.b", "list[].field")
  std::string_view prometheus;  // family name
  std::string_view labels;      // the label set that tells this figure apart in the family ("" = none)
  MetricType type;
  std::string_view help;
};

struct CounterSpec {
  Counter id;
  MetricSpec metric;
};

// In the order of Counter (checked below).
inline constexpr std::array<CounterSpec, 21> kWorkerCounters{{
    {Counter::connections_accepted, {"connections_accepted", "fd_connections_total", "result=\"accepted\"", MetricType::counter,
     "Client connections accepted."}},
    {Counter::connections_rejected, {"connections_rejected", "fd_connections_total", "result=\"rejected\"", MetricType::counter,
     "Client connections refused: server.max_connections reached and none idle."}},
    {Counter::connections_reclaimed, {"connections_reclaimed", "fd_connections_reclaimed_total", "", MetricType::counter,
     "Idle keep-alive connections closed to admit a new one at server.max_connections."}},
    {Counter::connections_refused_per_client, {"connections_refused_per_client", "fd_connections_total", "result=\"client_limit\"",
     MetricType::counter, "Client connections closed at once: their client had server.max_connections_per_client open."}},
    {Counter::requests, {"requests", "fd_requests_received_total", "", MetricType::counter,
     "Request heads read from clients, good or bad."}},
    {Counter::upstream_connects, {"upstream_connects", "fd_upstream_connections_total", "kind=\"new\"", MetricType::counter,
     "Upstream connections opened."}},
    {Counter::upstream_reuses, {"upstream_reuses", "fd_upstream_connections_total", "kind=\"reused\"", MetricType::counter,
     "Pooled upstream connections reused for a request."}},
    {Counter::upstream_retries, {"upstream_retries", "fd_upstream_retries_total", "kind=\"other_endpoint\"", MetricType::counter,
     "Attempts sent again to another endpoint after a failure."}},
    {Counter::upstream_stale_retries, {"upstream_stale_retries", "fd_upstream_retries_total", "kind=\"stale_connection\"", MetricType::counter,
     "Requests sent again on a new connection: the pooled one was found closed."}},
    {Counter::bytes_from_clients, {"bytes_from_clients", "fd_client_bytes_total", "direction=\"received\"", MetricType::counter,
     "Bytes read from clients."}},
    {Counter::bytes_to_clients, {"bytes_to_clients", "fd_client_bytes_total", "direction=\"sent\"", MetricType::counter,
     "Bytes written to clients."}},
    {Counter::proxy_protocol_errors, {"proxy_protocol_errors", "fd_proxy_protocol_errors_total", "", MetricType::counter,
     "Connections to a proxy_protocol listener closed without a valid PROXY header."}},
    {Counter::access_log_dropped_lines, {"access_log_dropped_lines", "fd_access_log_dropped_lines_total", "",
     MetricType::counter, "Access log lines dropped: the log writer was too far behind its destination."}},
    {Counter::tunnels_opened, {"tunnels_opened", "fd_tunnels_total", "event=\"opened\"", MetricType::counter,
     "Upgraded connections (WebSocket) tunnelled after the upstream's 101."}},
    {Counter::tunnels_closed, {"tunnels_closed", "fd_tunnels_total", "event=\"closed\"", MetricType::counter,
     "Tunnels closed (either side, idle, drain); open ones = opened - closed."}},
    {Counter::silent_connections_closed, {"silent_connections_closed", "fd_client_timeouts_total", "phase=\"first_request\"",
     MetricType::counter, "Connections closed at timeouts.client_header without having begun a request."}},
    {Counter::tls_handshake_timeouts, {"tls_handshake_timeouts", "fd_client_timeouts_total", "phase=\"tls_handshake\"",
     MetricType::counter, "TLS connections closed at timeouts.client_header with their handshake unfinished."}},
    {Counter::proxy_header_timeouts, {"proxy_header_timeouts", "fd_client_timeouts_total", "phase=\"proxy_header\"",
     MetricType::counter, "Connections closed at timeouts.client_header with their PROXY protocol header unfinished."}},
    {Counter::tls_handshake_plain_http, {"tls_handshake_plain_http", "fd_tls_handshake_errors_total", "reason=\"plain_http\"",
     MetricType::counter, "TLS handshakes that failed on plain HTTP sent to a TLS listener."}},
    {Counter::tls_handshake_closed, {"tls_handshake_closed", "fd_tls_handshake_errors_total", "reason=\"closed\"",
     MetricType::counter, "TLS handshakes the client closed or reset (a TCP health check does this)."}},
    {Counter::tls_handshake_failed, {"tls_handshake_failed", "fd_tls_handshake_errors_total", "reason=\"protocol\"",
     MetricType::counter, "TLS handshakes that failed otherwise: no common version or cipher, a certificate the client refused."}},
}};
inline constexpr std::size_t kCounterCount = kWorkerCounters.size();

consteval bool counters_in_order() {
  for (std::size_t i = 0; i < kWorkerCounters.size(); ++i)
    if (static_cast<std::size_t>(kWorkerCounters[i].id) != i) return false;
  return true;
}
static_assert(counters_in_order(), "kWorkerCounters must list every Counter, in the enum's order");

// Every other reported figure: kept by other areas, summed by server::collect_metrics.
inline constexpr std::array<MetricSpec, 33> kMetrics{{
    {"workers", "fd_workers", "", MetricType::gauge, "Workers that answered the last collection."},
    {"workers_missing", "fd_workers_missing", "", MetricType::gauge,
     "Workers that did not answer within 1 s (stuck): their share is absent."},
    {"responses", "fd_responses_total", "class", MetricType::counter,
     "Responses by status class (none: the client left first)."},
    {"errors", "fd_errors_total", "error", MetricType::counter, "Failures by the error table's label."},
    {"shed", "fd_load_shed_total", "", MetricType::counter, "Requests refused by load shedding."},
    {"rate_limits[].allowed", "fd_ratelimit_requests_total", "limit,manifest,result=\"allowed\"",
     MetricType::counter, "Requests a rate limit let through."},
    {"rate_limits[].refused", "fd_ratelimit_requests_total", "limit,manifest,result=\"refused\"",
     MetricType::counter, "Requests a rate limit refused."},
    {"endpoints[].breaker_opened", "fd_breaker_transitions_total", "endpoint,to=\"open\"", MetricType::counter,
     "Breaker transitions to open, summed over the workers."},
    {"endpoints[].breaker_closed", "fd_breaker_transitions_total", "endpoint,to=\"closed\"", MetricType::counter,
     "Breaker transitions to closed, summed over the workers."},
    {"endpoints[].breaker_rejected", "fd_breaker_rejected_total", "endpoint", MetricType::counter,
     "Requests picked for the endpoint that its half-open breaker refused (probe slots taken)."},
    {"endpoints[].breakers_open", "fd_breaker_open", "endpoint", MetricType::gauge,
     "Workers whose breaker for the endpoint is open now."},
    {"endpoints[].in_flight", "fd_upstream_in_flight", "endpoint", MetricType::gauge,
     "Requests in flight to the endpoint."},
    {"manifests[].ejections", "fd_outlier_ejections_total", "manifest", MetricType::counter,
     "Passive outlier ejections."},
    {"manifests[].retries", "fd_retry_budget_total", "manifest,result=\"admitted\"", MetricType::counter,
     "Retries the retry budget admitted."},
    {"manifests[].retries_exhausted", "fd_retry_budget_total", "manifest,result=\"refused\"", MetricType::counter,
     "Retries the retry budget refused."},
    {"manifests[].requests_in_flight", "fd_cluster_requests", "manifest", MetricType::gauge,
     "Requests in flight, whole process, for manifests with max_requests."},
    {"manifests[].connections", "fd_cluster_connections", "manifest", MetricType::gauge,
     "Upstream connections open, whole process, for manifests with max_connections."},
    {"manifests[].pending", "fd_cluster_pending", "manifest", MetricType::gauge,
     "Requests waiting for one of those connections (max_pending): a full queue answers 503 upstream_overflow."},
    {"global_rate_limit.fetches", "fd_ratelimit_global_total", "event=\"fetch\"", MetricType::counter,
     "Token leases fetched from Redis."},
    {"global_rate_limit.fetch_failures", "fd_ratelimit_global_total", "event=\"fetch_failure\"",
     MetricType::counter, "Lease fetches that failed."},
    {"global_rate_limit.waits", "fd_ratelimit_global_total", "event=\"wait\"", MetricType::counter,
     "Requests that waited for a lease."},
    {"global_rate_limit.refused_locally", "fd_ratelimit_global_total", "event=\"refused_locally\"",
     MetricType::counter, "Refusals decided from a cached \"none left\"."},
    {"global_rate_limit.unavailable", "fd_ratelimit_global_total", "event=\"unavailable\"", MetricType::counter,
     "Decisions left to on_redis_failure."},
    {"global_rate_limit.table_full", "fd_ratelimit_global_total", "event=\"table_full\"", MetricType::counter,
     "Keys that found no lease slot: every one in reach was waiting on Redis (on_redis_failure decided)."},
    {"global_rate_limit.evicted", "fd_ratelimit_global_total", "event=\"evicted\"", MetricType::counter,
     "Leases dropped to make room for another key (that key's next request asks Redis again)."},
    {"redis.connected", "fd_redis_connected", "", MetricType::gauge, "Worker connections to Redis up."},
    {"redis.commands", "fd_redis_commands_total", "result=\"sent\"", MetricType::counter, "Redis commands sent."},
    {"redis.failed", "fd_redis_commands_total", "result=\"failed\"", MetricType::counter,
     "Redis commands that failed."},
    {"redis.timeouts", "fd_redis_commands_total", "result=\"timeout\"", MetricType::counter,
     "Redis commands that timed out."},
    {"redis.connects", "fd_redis_connects_total", "result=\"ok\"", MetricType::counter, "Connections to Redis made."},
    {"redis.connect_failures", "fd_redis_connects_total", "result=\"failed\"", MetricType::counter,
     "Connections to Redis that failed."},
    {"local_limit_tables.evictions", "fd_ratelimit_table_total", "event=\"eviction\"", MetricType::counter,
     "Live keys evicted from a full probe window."},
    {"local_limit_tables.contention", "fd_ratelimit_table_total", "event=\"contention\"", MetricType::counter,
     "Requests allowed after 256 lost compare-and-swaps."},
}};

class WorkerCounters {
 public:
  std::uint64_t& operator[](Counter c) noexcept { return values_[static_cast<std::size_t>(c)]; }
  std::uint64_t operator[](Counter c) const noexcept { return values_[static_cast<std::size_t>(c)]; }
  std::uint64_t at(std::size_t index) const noexcept { return values_[index]; }

  // Index = status / 100 (0: no response sent).
  std::array<std::uint64_t, 6> responses_by_class{};
  std::array<std::uint64_t, static_cast<std::size_t>(Error::internal) + 1> errors{};

  WorkerCounters& operator+=(const WorkerCounters& o) noexcept {
    for (std::size_t i = 0; i < values_.size(); ++i) values_[i] += o.values_[i];
    for (std::size_t i = 0; i < responses_by_class.size(); ++i) responses_by_class[i] += o.responses_by_class[i];
    for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
    return *this;
  }

 private:
  std::array<std::uint64_t, kCounterCount> values_{};
};

}  // namespace frontdoor::stats
