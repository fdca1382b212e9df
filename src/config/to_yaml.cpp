// Config -> YAML that loads back into an equal Config. Every key is written, defaults included.
#include <cstdio>
#include <sstream>
#include <string>
#include <string_view>

#include "frontdoor/config/loader.hpp"

namespace frontdoor::config {
namespace {

// Written plain when nothing in it can mean more than text; double-quoted with escapes otherwise.
bool plain_is_safe(std::string_view s) {
  if (s.empty()) return false;
  // Words other YAML readers resolve to null or a boolean stay quoted, though this loader reads them as text.
  std::string lower;
  for (char c : s) lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  for (std::string_view word : {"null", "true", "false", "yes", "no", "on", "off", "y", "n"})
    if (lower == word) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) && s.front() != '_' && s.front() != '/' && s.front() != '.') return false;
  if (s.back() == ':') return false;
  for (char c : s)
    if (!alnum(c) && c != '_' && c != '.' && c != '/' && c != '-' && c != ':') return false;
  return true;
}

void append_escape(std::string& out, const char* format, unsigned value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, format, value);
  out += buf;
}

std::string quoted(std::string_view s) {
  if (plain_is_safe(s)) return std::string(s);
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x80) {
      append_escape(out, "\\x%02x", c);
      ++i;
    } else {
      // Non-ASCII as \u / \U escapes: the output stays ASCII whatever the reader's idea of the encoding.
      std::size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
      unsigned cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
      bool valid = len != 0 && i + len <= s.size();
      for (std::size_t k = 1; valid && k < len; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        valid = (cc & 0xc0) == 0x80;
        cp = (cp << 6) | (cc & 0x3f);
      }
      if (!valid) {  // not UTF-8 (validate() rejects it): keep the byte visible
        append_escape(out, "\\x%02x", c);
        ++i;
        continue;
      }
      append_escape(out, cp > 0xffff ? "\\U%08x" : "\\u%04x", cp);
      i += len;
    }
  }
  return out + "\"";
}

// The resilience section (a manifest may override all of it), indented by `in`.
void write_overridable_resilience(std::ostringstream& y, const ResilienceConfig& r, const std::string& in) {
  const auto& hc = r.health_check;
  y << in << "health_check:  # path empty = off\n"
    << in << "  path: " << (hc.path.empty() ? std::string("\"\"") : quoted(hc.path)) << "\n"
    << in << "  interval: " << format_duration(hc.interval) << "\n"
    << in << "  timeout: " << format_duration(hc.timeout) << "\n"
    << in << "  healthy_threshold: " << hc.healthy_threshold << "\n"
    << in << "  unhealthy_threshold: " << hc.unhealthy_threshold << "\n"
    << in << "  expected_status_min: " << hc.expected_status_min << "\n"
    << in << "  expected_status_max: " << hc.expected_status_max << "\n";
  const auto& cb = r.circuit_breaker;
  y << in << "circuit_breaker:\n"
    << in << "  consecutive_failures: " << cb.consecutive_failures << "  # 0 = off\n"
    << in << "  failure_rate_percent: " << cb.failure_rate_percent << "  # over window; 0 = off\n"
    << in << "  window: " << format_duration(cb.window) << "\n"
    << in << "  min_requests: " << cb.min_requests << "  # in the window before the rate counts\n"
    << in << "  open_duration: " << format_duration(cb.open_duration) << "\n"
    << in << "  half_open_max_probes: " << cb.half_open_max_probes << "\n"
    << in << "  half_open_successes_to_close: " << cb.half_open_successes_to_close << "\n"
    << in << "  failures: [";
  for (std::size_t i = 0; i < cb.failures.size(); ++i) y << (i ? ", " : "") << cb.failures[i];
  y << "]  # connect_error, timeout, bad_response, 5xx\n"
    << in << "  when_all_open: " << cb.when_all_open << "  # fail | try_anyway\n"
    << in << "outlier_detection:\n"
    << in << "  consecutive_failures: " << r.outlier_detection.consecutive_failures << "  # 0 = off\n"
    << in << "  base_ejection_time: " << format_duration(r.outlier_detection.base_ejection_time) << "\n"
    << in << "  max_ejection_time: " << format_duration(r.outlier_detection.max_ejection_time) << "\n"
    << in << "  max_ejection_percent: " << r.outlier_detection.max_ejection_percent << "\n"
    << in << "  when_all_ejected: " << r.outlier_detection.when_all_ejected << "  # use_ejected | fail\n"
    << in << "retries:\n"
    << in << "  max_attempts: " << r.retries.max_attempts << "  # 1 = no retry\n"
    << in << "  budget_percent: " << r.retries.budget_percent << "\n"
    << in << "  min_retries_per_second: " << r.retries.min_retries_per_second << "\n"
    << in << "  on_reset: " << (r.retries.on_reset ? "true" : "false") << "\n"
    << in << "  on_statuses: [";
  for (std::size_t i = 0; i < r.retries.on_statuses.size(); ++i) y << (i ? ", " : "") << r.retries.on_statuses[i];
  y << "]\n"
    << in << "  backoff_base: " << format_duration(r.retries.backoff_base) << "\n"
    << in << "  backoff_max: " << format_duration(r.retries.backoff_max) << "\n"
    << in << "  per_try_timeout: " << format_duration(r.retries.per_try_timeout) << "  # 0s = off\n";
}

void write_rate_limits(std::ostringstream& y, const std::vector<RateLimitConfig>& limits, const std::string& in) {
  for (const auto& r : limits)
    y << in << "- name: " << quoted(r.name) << "\n"
      << in << "  key: " << quoted(r.key) << "\n"
      << in << "  requests_per_second: " << r.requests_per_second << "\n"
      << in << "  burst: " << r.burst << "\n"
      << in << "  cost: " << r.cost << "  # units per request\n"
      << in << "  ipv6_prefix: " << r.ipv6_prefix << "  # key client_ip: IPv6 clients counted per /" << r.ipv6_prefix << "\n"
      << in << "  algorithm: " << r.algorithm << "  # token_bucket | leaky_bucket | sliding_window\n"
      << in << "  requests_per_window: " << r.requests_per_window << "  # sliding_window\n"
      << in << "  window: " << format_duration(r.window) << "  # sliding_window\n"
      << in << "  scope: " << r.scope << "  # local | global (through redis)\n"
      << in << "  on_redis_failure: " << r.on_redis_failure << "  # global: local | allow | deny\n"
      << in << "  lease_interval: " << format_duration(r.lease_interval) << "  # global: tokens leased per batch\n";
}

}  // namespace

std::string to_yaml(const Config& c) {
  std::ostringstream y;
  y << "# frontdoor configuration: every key, defaults included (docs/configuration.md)\n";
  y << "server:\n"
    << "  workers: " << c.server.workers << "  # 0 = one per core (restart to change)\n"
    << "  drain_timeout: " << format_duration(c.server.drain_timeout) << "\n"
    << "  drain_delay: " << format_duration(c.server.drain_delay) << "  # /ready 503 first, then the drain\n"
    << "  max_connections: " << c.server.max_connections << "  # 0 = from the file descriptor limit\n"
    << "  max_connections_per_client: " << c.server.max_connections_per_client
    << "  # per IPv4 address / IPv6 /64; 0 = no cap\n"
    << "  certificate_check_interval: " << format_duration(c.server.certificate_check_interval)
    << "  # TLS files read again when renewed; 0 = at start and reload only\n";
  if (c.listeners.empty()) y << "listeners: []\n";
  else y << "listeners:\n";
  for (const auto& l : c.listeners) {
    y << "  - name: " << quoted(l.name) << "\n"
      << "    address: " << quoted(l.address) << "\n"
      << "    default_environment: " << quoted(l.default_environment) << "\n"
      << "    environments: [";
    for (std::size_t i = 0; i < l.environments.size(); ++i) y << (i ? ", " : "") << quoted(l.environments[i]);
    y << "]  # chosen by the environment header; [] = default_environment only\n"
      << "    proxy_protocol: " << (l.proxy_protocol ? "true" : "false") << "\n"
      << "    trusted_proxies: [";
    for (std::size_t i = 0; i < l.trusted_proxies.size(); ++i) y << (i ? ", " : "") << quoted(l.trusted_proxies[i]);
    y << "]  # may say who the client is in X-Forwarded-For\n";
    if (l.tls)
      y << "    tls:\n"
        << "      certificate_file: " << quoted(l.tls->certificate_file) << "\n"
        << "      private_key_file: " << quoted(l.tls->private_key_file) << "\n";
  }
  y << "limits:\n"
    << "  max_request_line_bytes: " << format_size(c.limits.max_request_line_bytes) << "  # -> 414\n"
    << "  max_header_bytes: " << format_size(c.limits.max_header_bytes) << "  # -> 431\n"
    << "  max_header_count: " << c.limits.max_header_count << "  # -> 431\n"
    << "  max_body_bytes: " << format_size(c.limits.max_body_bytes) << "  # -> 413; 0 = unlimited\n";
  const auto& t = c.timeouts;
  y << "timeouts:\n"
    << "  client_header: " << format_duration(t.client_header) << "\n"
    << "  client_idle: " << format_duration(t.client_idle) << "\n"
    << "  client_body: " << format_duration(t.client_body) << "\n"
    << "  upstream_connect: " << format_duration(t.upstream_connect) << "\n"
    << "  upstream_response: " << format_duration(t.upstream_response) << "  # -> 504\n"
    << "  request_total: " << format_duration(t.request_total) << "  # 0s = no limit\n"
    << "  tunnel_idle: " << format_duration(t.tunnel_idle) << "  # an upgraded connection (WebSocket) idle\n";
  y << "upstream_pool:\n"
    << "  max_idle_per_endpoint: " << c.upstream_pool.max_idle_per_endpoint << "\n"
    << "  idle_timeout: " << format_duration(c.upstream_pool.idle_timeout) << "\n"
    << "  resolve_interval: " << format_duration(c.upstream_pool.resolve_interval)
    << "  # host names resolved again this often; 0s = only at start and reload\n";
  y << "routing:\n"
    << "  environment_header: " << quoted(c.routing.environment_header) << "\n";
  const auto& r = c.resilience;
  y << "resilience:\n";
  write_overridable_resilience(y, r, "  ");
  y << "load_shedding:  # 0 = off\n"
    << "  max_inflight_requests: " << c.load_shedding.max_inflight_requests << "  # per worker\n"
    << "  max_event_loop_lag: " << format_duration(c.load_shedding.max_event_loop_lag) << "\n"
    << "  max_memory: " << format_size(c.load_shedding.max_memory_bytes) << "\n";
  if (c.rate_limits.empty()) y << "rate_limits: []\n";
  else y << "rate_limits:\n";
  write_rate_limits(y, c.rate_limits, "  ");
  y << "rate_limit_headers: " << c.rate_limit_headers << "  # ietf | legacy (X-RateLimit-*) | both | none\n";
  y << "redis:\n"
    << "  address: " << quoted(c.redis.address) << "  # host:port or unix:/path; empty = none\n"
    << "  sentinels: [";
  for (std::size_t i = 0; i < c.redis.sentinels.size(); ++i) y << (i ? ", " : "") << quoted(c.redis.sentinels[i]);
  y << "]  # or: Sentinels naming the primary\n"
    << "  sentinel_master: " << quoted(c.redis.sentinel_master) << "\n"
    << "  password_env: " << quoted(c.redis.password_env) << "\n"
    << "  database: " << c.redis.database << "\n"
    << "  connect_timeout: " << format_duration(c.redis.connect_timeout) << "\n"
    << "  command_timeout: " << format_duration(c.redis.command_timeout) << "\n"
    << "  key_prefix: " << quoted(c.redis.key_prefix) << "\n"
    << "  key_secret_env: " << quoted(c.redis.key_secret_env) << "  # keys the hash of global limits' keys\n";
  const auto& pg = c.postgres;
  y << "postgres:  # the manifest store; one of dsn, dsn_env, dsn_file turns it on\n"
    << "  dsn: " << quoted(pg.dsn) << "\n"
    << "  dsn_env: " << quoted(pg.dsn_env) << "\n"
    << "  dsn_file: " << quoted(pg.dsn_file) << "\n"
    << "  replica_dsn: " << quoted(pg.replica_dsn) << "\n"
    << "  replica_dsn_env: " << quoted(pg.replica_dsn_env) << "\n"
    << "  listen_dsn: " << quoted(pg.listen_dsn) << "  # LISTEN needs a direct connection; empty = dsn\n"
    << "  listen_dsn_env: " << quoted(pg.listen_dsn_env) << "\n"
    << "  pool_size: " << pg.pool_size << "\n"
    << "  connect_timeout: " << format_duration(pg.connect_timeout) << "\n"
    << "  query_timeout: " << format_duration(pg.query_timeout) << "\n";
  const auto& mc = c.manifest_cache;
  y << "manifest_cache:\n"
    << "  max_entries: " << mc.max_entries << "\n"
    << "  max_bytes: " << format_size(mc.max_bytes) << "\n"
    << "  ttl: " << format_duration(mc.ttl) << "\n"
    << "  redis_ttl: " << format_duration(mc.redis_ttl) << "\n"
    << "  index_refresh: " << format_duration(mc.index_refresh) << "\n";
  y << "admin:\n"
    << "  address: " << quoted(c.admin.address) << "  # host:port of /health, /ready, /metrics; empty = off\n"
    << "  rate_window: " << format_duration(c.admin.rate_window) << "  # http_requests_per_second's window\n"
    << "  token_env: " << quoted(c.admin.token_env) << "  # bearer token for POST /reload; empty = none\n"
    << "  ready_requires: [";
  for (std::size_t i = 0; i < c.admin.ready_requires.size(); ++i) y << (i ? ", " : "") << quoted(c.admin.ready_requires[i]);
  y << "]  # dependencies whose outage fails /ready (redis)\n";
  y << "logging:\n"
    << "  level: " << quoted(c.logging.level) << "\n"
    << "  access_log:\n"
    << "    destination: " << quoted(c.logging.access_log.destination) << "\n"
    << "    format: " << (c.logging.access_log.format == AccessLogFormat::json ? "json" : "text") << "\n";
  if (c.manifests.empty()) y << "manifests: []\n";
  else y << "manifests:\n";
  for (const auto& m : c.manifests) {
    y << "  - project: " << quoted(m.project) << "\n"
      << "    module: " << quoted(m.module) << "\n"
      << "    environment: " << quoted(m.environment) << "\n"
      << "    balancing: " << quoted(m.balancing) << "\n"
      << "    strip_path_prefix: " << (m.strip_path_prefix ? "true" : "false") << "\n"
      << "    hash_key: " << quoted(m.hash_key) << "  # consistent_hash\n"
      << "    sticky_cookie: " << quoted(m.sticky_cookie) << "  # sticky\n"
      << "    upgrades: [" << [&] {
           std::string list;
           for (std::size_t u = 0; u < m.upgrades.size(); ++u) list += (u ? ", " : "") + quoted(m.upgrades[u]);
           return list;
         }() << "]  # tunnelled after a 101; [] = none\n"
      << "    priority: " << m.priority << "  # shed first: low, then normal; never high\n"
      << "    max_requests: " << m.max_requests << "  # in flight, whole process; 0 = no limit\n"
      << "    max_active_retries: " << m.max_active_retries << "  # 0 = no limit\n"
      << "    max_connections: " << m.max_connections << "  # upstream connections, whole process; 0 = no limit\n"
      << "    max_pending: " << m.max_pending << "  # requests waiting for one of them\n";
    if (m.endpoints.empty()) y << "    endpoints: []\n";
    else y << "    endpoints:\n";
    for (const auto& e : m.endpoints)
      y << "      - address: " << quoted(e.address) << "\n"
        << "        weight: " << e.weight << "\n"
        << "        priority: " << e.priority << "\n";
    if (!m.rate_limits.empty()) {
      y << "    rate_limits:  # this manifest's requests only\n";
      write_rate_limits(y, m.rate_limits, "      ");
    }
    if (m.resilience) {
      y << "    resilience:  # overrides the top level\n";
      write_overridable_resilience(y, *m.resilience, "      ");
    }
  }
  return y.str();
}

}  // namespace frontdoor::config
