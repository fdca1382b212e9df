// The semantic checks, shared by files (errors point at the value's line) and configs built in memory.
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/core/address.hpp"
#include "frontdoor/core/network.hpp"
#include "source_map.hpp"

namespace frontdoor::config {
namespace detail {
namespace {

constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
// Every balancing policy a manifest may name (resilience/pickers.hpp implements each).
constexpr std::string_view kBalancing[] = {"round_robin",   "weighted",        "least_connections",
                                           "latency_aware", "consistent_hash", "sticky"};

constexpr std::uint32_t kMaxHeaderBytes = 1u << 20;
constexpr std::uint32_t kMaxHeaderCount = 10000;

template <std::size_t N>
bool one_of(std::string_view v, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), v) != std::end(set);
}

template <std::size_t N>
std::string list_of(const std::string_view (&set)[N]) {
  std::string out;
  for (auto s : set) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_';
}

// "host:port" with a DNS name or IPv4 address, or "[v6]:port" (with an optional %zone).
std::optional<HostPort> parse_address(std::string_view text) {
  auto hp = split_host_port(text);
  if (!hp) return std::nullopt;
  if (text.front() == '[') {
    std::string_view host = hp->host;
    const auto zone = host.find('%');
    if (zone != std::string_view::npos) {
      const auto name = host.substr(zone + 1);
      if (name.empty() || !std::all_of(name.begin(), name.end(), is_host_char)) return std::nullopt;
      host = host.substr(0, zone);
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1) return std::nullopt;
  } else if (!std::all_of(hp->host.begin(), hp->host.end(), is_host_char)) {
    return std::nullopt;
  }
  return hp;
}

// Whether two listening addresses would take one port: the same host, or a wildcard of the other's
// family ("::" takes IPv4 too: dual stack). Host names are compared as written (`check` resolves them).
bool same_port(const HostPort& a, const HostPort& b) {
  if (a.port == 0 || a.port != b.port) return false;
  const auto v6 = [](const HostPort& x) { return x.host.find(':') != std::string::npos; };
  const auto any4 = [](const HostPort& x) { return x.host == "0.0.0.0"; };
  const auto any6 = [](const HostPort& x) { return x.host == "::"; };
  return a.host == b.host || any6(a) || any6(b) || (any4(a) && !v6(b)) || (any4(b) && !v6(a));
}

bool is_token(std::string_view s) {  // an HTTP header name (RFC 9110 token)
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// Free text (names, paths) must be valid UTF-8 without control characters: it ends up in logs and
// file names, and to_yaml must be able to write it back.
class Checker {
 public:
  Checker(const Config& c, const SourceMap* map) : config_(c), map_(map) {
    file_ = c.source.empty() ? "<memory>" : c.source;
  }

  std::vector<ConfigError> run() {
    listeners();
    server_and_limits();
    timeouts();
    logging();
    rate_limits();
    redis();
    postgres();
    manifests();
    sort_errors(errors_);
    return std::move(errors_);
  }

 private:
  void add(const std::string& path, std::string message) {
    Position pos;
    if (map_) {
      if (suppressed(path)) return;
      // The most specific known position: the path itself, else its nearest parent.
      std::string p = path;
      for (;;) {
        if (auto it = map_->positions.find(p); it != map_->positions.end()) {
          pos = it->second;
          break;
        }
        const auto cut = p.find_last_of(".[");
        if (cut == std::string::npos) break;
        p.resize(cut);
      }
    }
    errors_.push_back({file_, pos.line, pos.column, path + ": " + std::move(message)});
  }

  // A value that already failed to parse (or lies under one that did) holds a default or a
  // placeholder: saying more about it would only repeat the first error. Looks up the path and
  // each of its parents ("a[1].b", "a[1]", "a", then "" for the whole document): a few lookups
  // however many values failed.
  bool suppressed(const std::string& path) const {
    const auto& failed = map_->failed;
    if (failed.empty()) return false;
    std::string p = path;
    for (;;) {
      if (failed.count(p) != 0) return true;
      if (p.empty()) return false;
      const auto cut = p.find_last_of(".[");
      p.resize(cut == std::string::npos ? 0 : cut);
    }
  }

  void free_text(const std::string& path, const std::string& value) {
    if (auto problem = text_problem(value); !problem.empty()) add(path, shown(value) + " " + problem);
  }

  void listeners() {
    if (config_.listeners.empty()) add("listeners", "at least one listener is required");
    std::map<std::string, std::size_t> names;
    for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
      const auto& l = config_.listeners[i];
      const std::string path = "listeners[" + std::to_string(i) + "]";
      if (l.name.empty()) {
        add(path + ".name", "must not be empty");
      } else if (auto [it, inserted] = names.emplace(l.name, i); !inserted) {
        add(path + ".name", shown(l.name) + " is already the name of listeners[" + std::to_string(it->second) +
                                "] (listener names must be unique)");
      } else {
        free_text(path + ".name", l.name);
      }
      if (!parse_address(l.address))
        add(path + ".address", shown(l.address) + " is not host:port (expected e.g. 0.0.0.0:8080 or [::]:8080, port 0..65535)");
      if (l.default_environment == "*" || !is_key_part(l.default_environment))
        add(path + ".default_environment",
            shown(l.default_environment) + " is not an environment name (expected [A-Za-z0-9._-]+)");
      for (std::size_t e = 0; e < l.environments.size(); ++e)
        if (l.environments[e] != "*" && !is_key_part(l.environments[e]))
          add(path + ".environments[" + std::to_string(e) + "]",
              shown(l.environments[e]) + " is not an environment name (expected [A-Za-z0-9._-]+, or \"*\" for any)");
      for (std::size_t t = 0; t < l.trusted_proxies.size(); ++t)
        if (!Network::parse(l.trusted_proxies[t]))
          add(path + ".trusted_proxies[" + std::to_string(t) + "]",
              shown(l.trusted_proxies[t]) + " is not a network (expected an address or CIDR, e.g. 10.0.0.0/8 or fd00::/8)");
      if (l.tls) {
        tls_file(path + ".tls.certificate_file", l.tls->certificate_file, "certificate chain");
        tls_file(path + ".tls.private_key_file", l.tls->private_key_file, "private key");
      }
    }
    addresses_apart();
  }

  // Two listeners (or a listener and the admin listener) on one port: `run` fails to bind the
  // second, so the file is refused here, where `check` sees it.
  void addresses_apart() {
    std::vector<std::pair<std::string, HostPort>> taken;  // what holds it, its address
    const auto claim = [&](const std::string& path, const std::string& holder, const std::string& address) {
      const auto hp = parse_address(address);
      if (!hp) return;
      for (const auto& [other, other_hp] : taken)
        if (same_port(*hp, other_hp))
          return add(path, shown(address) + " takes the port of " + other + " (two sockets cannot listen on one port)");
      taken.emplace_back(holder, *hp);
    };
    for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
      const auto path = "listeners[" + std::to_string(i) + "]";
      claim(path + ".address", path + " (" + config_.listeners[i].name + ")", config_.listeners[i].address);
    }
    if (!config_.admin.address.empty()) claim("admin.address", "the admin listener", config_.admin.address);
  }

  void tls_file(const std::string& path, const std::string& file, std::string_view what) {
    if (file.empty()) return add(path, "is required (a PEM " + std::string(what) + " file)");
    if (auto problem = text_problem(file); !problem.empty()) return add(path, shown(file) + " " + problem);
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return add(path, "cannot read " + shown(file) + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return add(path, shown(file) + " is not a regular file (expected a PEM file)");
    if (::access(file.c_str(), R_OK) != 0) add(path, "cannot read " + shown(file) + ": " + std::strerror(errno));
  }

  void server_and_limits() {
    const auto& s = config_.server;
    if (s.workers > 1024)
      add("server.workers", std::to_string(s.workers) + " is too many (expected 0..1024; 0 = one per core)");
    if (s.drain_timeout.count() < 0) add("server.drain_timeout", "must not be negative");
    if (s.drain_delay.count() < 0) add("server.drain_delay", "must not be negative");
    if (s.certificate_check_interval.count() < 0) add("server.certificate_check_interval", "must not be negative");
    if (const auto& a = config_.admin; !a.address.empty() && !parse_address(a.address))
      add("admin.address", shown(a.address) + " is not host:port (expected e.g. 0.0.0.0:9901)");
    if (!config_.admin.token_env.empty() && !is_token(config_.admin.token_env))
      add("admin.token_env", shown(config_.admin.token_env) + " is not an environment variable name");
    for (std::size_t i = 0; i < config_.admin.ready_requires.size(); ++i) {
      const auto& dep = config_.admin.ready_requires[i];
      if (dep != "redis" && dep != "postgres")
        add("admin.ready_requires[" + std::to_string(i) + "]",
            shown(dep) + " is not a dependency (expected redis or postgres)");
      else if (dep == "redis" && !config_.redis.enabled())
        add("admin.ready_requires[" + std::to_string(i) + "]",
            "redis is required for readiness but the redis section has no address or sentinels");
      else if (dep == "postgres" && !config_.postgres.enabled())
        add("admin.ready_requires[" + std::to_string(i) + "]",
            "postgres is required for readiness but there is no postgres section");
    }
    // One sample a second is kept for the window: a window of years was memory without end.
    if (config_.admin.rate_window < std::chrono::seconds(1) || config_.admin.rate_window > std::chrono::hours(1))
      add("admin.rate_window", format_duration(config_.admin.rate_window) + " is out of range (expected 1s..1h)");
    const auto& lim = config_.limits;
    if (lim.max_request_line_bytes < 64)
      add("limits.max_request_line_bytes",
          std::to_string(lim.max_request_line_bytes) + " is too small (expected at least 64 bytes)");
    if (lim.max_header_bytes < lim.max_request_line_bytes)
      add("limits.max_header_bytes", std::to_string(lim.max_header_bytes) +
                                         " is smaller than limits.max_request_line_bytes (" +
                                         std::to_string(lim.max_request_line_bytes) +
                                         "); the head includes the request line");
    // Upper bounds: each connection's buffers are sized by max_header_bytes and its header table by
    // max_header_count, so a typo here would cost memory on every connection.
    if (lim.max_header_bytes > kMaxHeaderBytes)
      add("limits.max_header_bytes", std::to_string(lim.max_header_bytes) + " is too large (expected at most 1MiB)");
    if (lim.max_header_count < 1 || lim.max_header_count > kMaxHeaderCount)
      add("limits.max_header_count",
          std::to_string(lim.max_header_count) + " is out of range (expected 1.." + std::to_string(kMaxHeaderCount) + ")");
    if (const auto r = config_.upstream_pool.resolve_interval; r.count() != 0 && r < std::chrono::seconds(1))
      add("upstream_pool.resolve_interval", "must be 0s (off) or at least 1s");
    if (config_.upstream_pool.idle_timeout.count() <= 0)
      add("upstream_pool.idle_timeout", "must be greater than 0 (use max_idle_per_endpoint: 0 to disable the pool)");
    const auto& r = config_.resilience;
    overridable_resilience("resilience", r);
    if (!is_token(config_.routing.environment_header))
      add("routing.environment_header",
          shown(config_.routing.environment_header) + " is not a header name (expected e.g. X-Environment)");
  }

  void timeouts() {
    const auto& t = config_.timeouts;
    const std::pair<const char*, Duration> positive[] = {{"client_header", t.client_header},
                                                         {"client_idle", t.client_idle},
                                                         {"client_body", t.client_body},
                                                         {"upstream_connect", t.upstream_connect},
                                                         {"upstream_response", t.upstream_response},
                                                         {"tunnel_idle", t.tunnel_idle}};
    for (const auto& [key, value] : positive)
      if (value.count() <= 0) add(std::string("timeouts.") + key, "must be greater than 0");
    if (t.request_total.count() < 0) add("timeouts.request_total", "must not be negative (0 = no limit)");
  }

  void logging() {
    const auto& log = config_.logging;
    if (!one_of(log.level, kLevels))
      add("logging.level", shown(log.level) + " is not a log level (expected one of: " + list_of(kLevels) + ")");
    if (log.access_log.destination.empty())
      add("logging.access_log.destination", "must not be empty (expected off, stdout, stderr or a file path)");
    else
      free_text("logging.access_log.destination", log.access_log.destination);
  }

  void rate_limits() {
    rate_limit_list("rate_limits", config_.rate_limits);
    const auto& h = config_.rate_limit_headers;
    if (h != "ietf" && h != "legacy" && h != "both" && h != "none")
      add("rate_limit_headers", shown(h) + " is not a choice (expected ietf, legacy, both or none)");
  }

  void rate_limit_list(const std::string& where, const std::vector<RateLimitConfig>& limits) {
    std::set<std::string> names;
    if (limits.size() > 32) add(where, std::to_string(limits.size()) + " limits are too many (expected at most 32)");
    for (std::size_t i = 0; i < limits.size(); ++i) {
      const auto& r = limits[i];
      const std::string path = where + "[" + std::to_string(i) + "]";
      if (!is_token(r.name)) add(path + ".name", shown(r.name) + " is not a name (expected letters, digits, - or _)");
      else if (!names.insert(r.name).second) add(path + ".name", shown(r.name) + " names another rate limit too");
      const bool header_key = r.key.rfind("header:", 0) == 0 && is_token(r.key.substr(7));
      if (!header_key && r.key != "client_ip" && r.key != "path" && r.key != "manifest")
        add(path + ".key", shown(r.key) + " is not a key (expected client_ip, header:<Name>, path or manifest)");
      if (r.requests_per_second < 1 || r.requests_per_second > 1'000'000)
        add(path + ".requests_per_second",
            std::to_string(r.requests_per_second) + " is out of range (expected 1..1000000)");
      if (r.burst < 1 || r.burst > 1'000'000)
        add(path + ".burst", std::to_string(r.burst) + " is out of range (expected 1..1000000)");
      const bool sliding = r.algorithm == "sliding_window";
      const std::uint32_t most = sliding ? r.requests_per_window : r.burst;
      if (r.ipv6_prefix < 1 || r.ipv6_prefix > 128)
        add(path + ".ipv6_prefix", std::to_string(r.ipv6_prefix) + " is out of range (expected 1..128)");
      if (r.cost < 1 || r.cost > most)
        add(path + ".cost", std::to_string(r.cost) + " is out of range (expected 1.." +
                                (sliding ? "requests_per_window, " : "burst, ") + std::to_string(most) +
                                ": a costlier request could never pass)");
      if (r.algorithm != "token_bucket" && r.algorithm != "leaky_bucket" && !sliding)
        add(path + ".algorithm",
            shown(r.algorithm) + " is not an algorithm (expected token_bucket, leaky_bucket or sliding_window)");
      else if (r.algorithm != "token_bucket" && r.scope == "global")
        add(path + ".algorithm", r.algorithm + " is local only: it needs scope local (global limits are token buckets)");
      if (sliding && (r.requests_per_window < 1 || r.requests_per_window > 65535))
        add(path + ".requests_per_window",
            std::to_string(r.requests_per_window) + " is out of range (expected 1..65535)");
      if (sliding && (r.window < std::chrono::seconds(1) || r.window > std::chrono::hours(24)))
        add(path + ".window", format_duration(r.window) + " is out of range (expected 1s..24h)");
      if (r.scope != "local" && r.scope != "global")
        add(path + ".scope", shown(r.scope) + " is not a scope (expected local or global)");
      else if (r.scope == "global" && !config_.redis.enabled())
        add(path + ".scope", "global needs the redis section's address (the replicas share the limit there)");
      if (r.on_redis_failure != "local" && r.on_redis_failure != "allow" && r.on_redis_failure != "deny")
        add(path + ".on_redis_failure",
            shown(r.on_redis_failure) + " is not a policy (expected local, allow or deny)");
      if (r.lease_interval < std::chrono::milliseconds(1) || r.lease_interval > std::chrono::seconds(1))
        add(path + ".lease_interval", format_duration(r.lease_interval) + " is out of range (expected 1ms..1s)");
    }
  }

  // What a manifest may override too (health checks are top-level only).
  void overridable_resilience(const std::string& where, const ResilienceConfig& r) {
    const auto& hc = r.health_check;
    if (!hc.path.empty()) {
      if (hc.path.front() != '/' || hc.path.find_first_of(" \r\n\t") != std::string::npos)
        add(where + ".health_check.path", shown(hc.path) + " is not a path (expected e.g. /healthz)");
      // Every replica probes every endpoint each interval: below 100 ms it is a load of its own.
      if (hc.interval < std::chrono::milliseconds(100))
        add(where + ".health_check.interval", format_duration(hc.interval) + " is too short (expected at least 100ms)");
      if (hc.timeout < std::chrono::milliseconds(10))
        add(where + ".health_check.timeout", format_duration(hc.timeout) + " is too short (expected at least 10ms)");
      if (hc.healthy_threshold < 1) add(where + ".health_check.healthy_threshold", "must be at least 1");
      if (hc.unhealthy_threshold < 1) add(where + ".health_check.unhealthy_threshold", "must be at least 1");
      if (hc.expected_status_min < 100 || hc.expected_status_max > 599 ||
          hc.expected_status_min > hc.expected_status_max)
        add(where + ".health_check.expected_status_min",
            "expected 100 <= expected_status_min <= expected_status_max <= 599");
    }
    const auto& cb = r.circuit_breaker;
    if (cb.failure_rate_percent > 100)
      add(where + ".circuit_breaker.failure_rate_percent",
          std::to_string(cb.failure_rate_percent) + " is out of range (expected 0 (off)..100)");
    if (cb.failure_rate_percent > 0 && cb.window < std::chrono::seconds(1))
      add(where + ".circuit_breaker.window", "must be at least 1s");
    if (cb.min_requests < 1) add(where + ".circuit_breaker.min_requests", "must be at least 1");
    if (cb.half_open_successes_to_close < 1)
      add(where + ".circuit_breaker.half_open_successes_to_close", "must be at least 1");
    static constexpr std::string_view kFailureKinds[] = {"connect_error", "timeout", "bad_response", "5xx"};
    for (std::size_t i = 0; i < cb.failures.size(); ++i)
      if (!one_of(cb.failures[i], kFailureKinds))
        add(where + ".circuit_breaker.failures[" + std::to_string(i) + "]",
            shown(cb.failures[i]) + " is not a failure kind (expected one of: " + list_of(kFailureKinds) + ")");
    if (cb.when_all_open != "fail" && cb.when_all_open != "try_anyway")
      add(where + ".circuit_breaker.when_all_open",
          shown(cb.when_all_open) + " is not a policy (expected fail or try_anyway)");
    if (r.outlier_detection.when_all_ejected != "use_ejected" && r.outlier_detection.when_all_ejected != "fail")
      add(where + ".outlier_detection.when_all_ejected",
          shown(r.outlier_detection.when_all_ejected) + " is not a policy (expected use_ejected or fail)");
    if (r.circuit_breaker.open_duration.count() <= 0)
      add(where + ".circuit_breaker.open_duration", "must be greater than 0");
    if (r.circuit_breaker.half_open_max_probes < 1)
      add(where + ".circuit_breaker.half_open_max_probes", "must be at least 1");
    if (r.outlier_detection.base_ejection_time.count() <= 0)
      add(where + ".outlier_detection.base_ejection_time", "must be greater than 0");
    if (r.outlier_detection.max_ejection_time < r.outlier_detection.base_ejection_time)
      add(where + ".outlier_detection.max_ejection_time", "must be at least base_ejection_time");
    if (r.outlier_detection.max_ejection_percent > 100)
      add(where + ".outlier_detection.max_ejection_percent",
          std::to_string(r.outlier_detection.max_ejection_percent) + " is out of range (expected 0..100)");
    if (r.retries.max_attempts < 1 || r.retries.max_attempts > 10)
      add(where + ".retries.max_attempts",
          std::to_string(r.retries.max_attempts) + " is out of range (expected 1..10; 1 = no retry)");
    for (std::size_t i = 0; i < r.retries.on_statuses.size(); ++i)
      if (r.retries.on_statuses[i] < 500 || r.retries.on_statuses[i] > 599)
        add(where + ".retries.on_statuses[" + std::to_string(i) + "]",
            std::to_string(r.retries.on_statuses[i]) + " is not a 5xx status (expected 500..599)");
    if (r.retries.backoff_base.count() <= 0) add(where + ".retries.backoff_base", "must be greater than 0");
    if (r.retries.backoff_max < r.retries.backoff_base)
      add(where + ".retries.backoff_max", "must be at least backoff_base");
    if (r.retries.budget_percent > 100)
      add(where + ".retries.budget_percent",
          std::to_string(r.retries.budget_percent) + " is out of range (expected 0..100)");
  }

  void redis() {
    const auto& r = config_.redis;
    if (!r.address.empty()) {
      const bool unix_socket = r.address.rfind("unix:", 0) == 0 && r.address.size() > 5;
      const auto colon = r.address.rfind(':');
      if (!unix_socket && (colon == std::string::npos || colon == 0 || colon + 1 == r.address.size()))
        add("redis.address", shown(r.address) + " is not an address (expected host:port or unix:/path)");
      else
        free_text("redis.address", r.address);
    }
    if (!r.address.empty() && !r.sentinels.empty())
      add("redis.sentinels", "and redis.address are both set (expected one: the server, or the Sentinels that name it)");
    if (!r.sentinels.empty() && !is_key_part(r.sentinel_master))
      add("redis.sentinel_master", shown(r.sentinel_master) + " is not a master name (expected the name the Sentinels "
                                                             "monitor, e.g. mymaster)");
    for (std::size_t i = 0; i < r.sentinels.size(); ++i) {
      const auto hp = parse_address(r.sentinels[i]);
      if (!hp || hp->port == 0)
        add("redis.sentinels[" + std::to_string(i) + "]", shown(r.sentinels[i]) + " is not host:port");
    }
    if (r.sentinels.empty() && !r.sentinel_master.empty())
      add("redis.sentinel_master", "is set but redis.sentinels is empty");
    if (!r.password_env.empty() && !is_token(r.password_env))
      add("redis.password_env", shown(r.password_env) + " is not an environment variable name");
    if (!r.key_secret_env.empty() && !is_token(r.key_secret_env))
      add("redis.key_secret_env", shown(r.key_secret_env) + " is not an environment variable name");
    if (r.database > 15) add("redis.database", std::to_string(r.database) + " is out of range (expected 0..15)");
    if (r.connect_timeout.count() <= 0) add("redis.connect_timeout", "must be more than 0");
    if (r.command_timeout.count() <= 0) add("redis.command_timeout", "must be more than 0");
    if (r.key_prefix.size() > 64) add("redis.key_prefix", "is too long (expected at most 64 bytes)");
    else free_text("redis.key_prefix", r.key_prefix);
  }

  void postgres() {
    const auto& pg = config_.postgres;
    const int sources = !pg.dsn.empty() + !pg.dsn_env.empty() + !pg.dsn_file.empty();
    if (sources > 1) add("postgres", "names more than one of dsn, dsn_env and dsn_file (expected one)");
    if (!pg.replica_dsn.empty() && !pg.replica_dsn_env.empty())
      add("postgres", "names both replica_dsn and replica_dsn_env (expected one)");
    if (!pg.listen_dsn.empty() && !pg.listen_dsn_env.empty())
      add("postgres", "names both listen_dsn and listen_dsn_env (expected one)");
    for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"dsn_env", &pg.dsn_env},
                                     {"replica_dsn_env", &pg.replica_dsn_env},
                                     {"listen_dsn_env", &pg.listen_dsn_env}})
      if (!value->empty() && !is_token(*value))
        add(std::string("postgres.") + key, shown(*value) + " is not an environment variable name");
    free_text("postgres.dsn_file", pg.dsn_file);
    if (!pg.enabled() && (!pg.replica_dsn.empty() || !pg.replica_dsn_env.empty() || !pg.listen_dsn.empty() ||
                          !pg.listen_dsn_env.empty()))
      add("postgres", "a replica or listen connection needs the primary's dsn, dsn_env or dsn_file");
    if (pg.pool_size < 1 || pg.pool_size > 64)
      add("postgres.pool_size", std::to_string(pg.pool_size) + " is out of range (expected 1..64)");
    if (pg.connect_timeout.count() <= 0) add("postgres.connect_timeout", "must be more than 0");
    if (pg.query_timeout.count() <= 0) add("postgres.query_timeout", "must be more than 0");
    const auto& mc = config_.manifest_cache;
    if (mc.max_entries < 1) add("manifest_cache.max_entries", "must be at least 1");
    if (mc.max_bytes < 1024) add("manifest_cache.max_bytes", "must be at least 1KiB");
    if (mc.ttl < std::chrono::seconds(1)) add("manifest_cache.ttl", "must be at least 1s");
    if (mc.redis_ttl < std::chrono::seconds(1)) add("manifest_cache.redis_ttl", "must be at least 1s");
    if (mc.index_refresh < std::chrono::seconds(1)) add("manifest_cache.index_refresh", "must be at least 1s");
  }

  void manifests() {
    std::map<std::tuple<std::string, std::string, std::string>, std::size_t> keys;
    for (std::size_t i = 0; i < config_.manifests.size(); ++i) {
      const auto& m = config_.manifests[i];
      const std::string path = "manifests[" + std::to_string(i) + "]";
      bool keys_ok = true;
      for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"project", &m.project},
                                       {"module", &m.module},
                                       {"environment", &m.environment}}) {
        if (value->empty()) {
          add(path + "." + key, "is required (expected [A-Za-z0-9._-]+ or \"*\")");
          keys_ok = false;
        } else if (!is_key_part(*value)) {
          add(path + "." + key, shown(*value) + " is not valid (expected [A-Za-z0-9._-]+ or \"*\")");
          keys_ok = false;
        }
      }
      if (keys_ok) {
        if (auto [it, inserted] = keys.emplace(std::tuple(m.project, m.module, m.environment), i); !inserted)
          add(path, "project/module/environment " + m.project + "/" + m.module + "/" + m.environment +
                        " is already defined by manifests[" + std::to_string(it->second) + "]");
      }
      if (m.endpoints.empty()) add(path + ".endpoints", "at least one endpoint is required");
      for (std::size_t j = 0; j < m.endpoints.size(); ++j) {
        const auto& e = m.endpoints[j];
        const std::string epath = path + ".endpoints[" + std::to_string(j) + "]";
        const auto hp = parse_address(e.address);
        if (!hp || hp->port == 0)
          add(epath + ".address", shown(e.address) + " is not host:port (expected e.g. 10.0.0.5:8080, port 1..65535)");
        if (e.weight < 1 || e.weight > 10000)
          add(epath + ".weight", std::to_string(e.weight) + " is out of range (expected 1..10000)");
        if (e.priority > 9)
          add(epath + ".priority", std::to_string(e.priority) + " is out of range (expected 0..9)");
      }
      if (!one_of(m.balancing, kBalancing))
        add(path + ".balancing",
            shown(m.balancing) + " is not a balancing policy (expected one of: " + list_of(kBalancing) + ")");
      const bool named_key = (m.hash_key.rfind("header:", 0) == 0 && is_token(m.hash_key.substr(7))) ||
                             (m.hash_key.rfind("cookie:", 0) == 0 && is_token(m.hash_key.substr(7)));
      if (m.hash_key != "request_uri" && !named_key)
        add(path + ".hash_key", shown(m.hash_key) + " is not a hash key (expected request_uri, header:<Name> or cookie:<Name>)");
      if (m.priority != "high" && m.priority != "normal" && m.priority != "low")
        add(path + ".priority", shown(m.priority) + " is not a priority (expected high, normal or low)");
      if (m.max_pending != 0 && m.max_connections == 0)
        add(path + ".max_pending", "needs max_connections (requests wait for a connection only under that limit)");
      rate_limit_list(path + ".rate_limits", m.rate_limits);
      if (m.resilience) overridable_resilience(path + ".resilience", *m.resilience);
      if (!is_token(m.sticky_cookie))
        add(path + ".sticky_cookie", shown(m.sticky_cookie) + " is not a cookie name");
      for (std::size_t u = 0; u < m.upgrades.size(); ++u)
        if (!is_token(m.upgrades[u]))
          add(path + ".upgrades[" + std::to_string(u) + "]",
              shown(m.upgrades[u]) + " is not an upgrade token (expected e.g. websocket)");
    }
  }

  const Config& config_;
  const SourceMap* map_;
  std::string file_;
  std::vector<ConfigError> errors_;
};

}  // namespace

std::vector<ConfigError> check(const Config& config, const SourceMap* map) { return Checker(config, map).run(); }

}  // namespace detail

std::vector<ConfigError> validate(const Config& config) {
  try {
    auto errors = detail::check(config, nullptr);
    detail::cap_errors(errors, config.source.empty() ? "<memory>" : config.source);
    return errors;
  } catch (const std::exception& e) {
    return {{config.source.empty() ? "<memory>" : config.source, 0, 0, std::string("cannot validate: ") + e.what()}};
  }
}

}  // namespace frontdoor::config
