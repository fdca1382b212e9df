// YAML -> Config. Walks the document against the schema (no generic recursion: the depth of the
// walk is fixed whatever the input), records each value's position, then runs the shared checks.
#include "frontdoor/config/loader.hpp"


#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "parser.hpp"

namespace frontdoor::config {
namespace detail {

void Parser::parse(const YAML::Node& root, Config& c) {
  const Field top{root, "", position_of(root)};
  if (root.IsNull()) {
    error(top, "the configuration is empty (expected at least a listeners: section)");
    return;
  }
  if (!root.IsMap()) {
    error(top,
          "the configuration must be a mapping of sections (server, listeners, limits, timeouts, upstream_pool, "
          "routing, resilience, rate_limits, rate_limit_headers, redis, postgres, manifest_cache, load_shedding, logging, admin, "
          "manifests), found " + found(root));
    return;
  }
  each(top,
       {"server", "listeners", "limits", "timeouts", "upstream_pool", "routing", "resilience", "rate_limits",
        "rate_limit_headers", "redis", "postgres", "manifest_cache", "load_shedding", "logging", "admin", "manifests"},
       [&](const std::string& key, const Field& f) {
         if (key == "server") {
           each(f, {"workers", "drain_timeout", "drain_delay", "max_connections", "max_connections_per_client",
                    "certificate_check_interval"},
                [&](const std::string& k, const Field& v) {
             if (k == "workers") integer(v, c.server.workers, "0..1024; 0 = one per core");
             else if (k == "drain_timeout") duration(v, c.server.drain_timeout);
             else if (k == "drain_delay") duration(v, c.server.drain_delay);
             else if (k == "certificate_check_interval") duration(v, c.server.certificate_check_interval);
             else if (k == "max_connections_per_client")
               integer(v, c.server.max_connections_per_client, "0 (no cap) or more");
             else integer(v, c.server.max_connections, "0 (from the file descriptor limit) or more");
           });
         } else if (key == "listeners") {
           list(f, "listeners", [&](const Field& item) { listener(item, c.listeners.emplace_back()); });
         } else if (key == "limits") {
           each(f, {"max_request_line_bytes", "max_header_bytes", "max_header_count", "max_body_bytes"},
                [&](const std::string& k, const Field& v) {
                  auto& lim = c.limits;
                  if (k == "max_request_line_bytes") size(v, lim.max_request_line_bytes);
                  else if (k == "max_header_bytes") size(v, lim.max_header_bytes);
                  else if (k == "max_header_count") integer(v, lim.max_header_count, "at least 1");
                  else size(v, lim.max_body_bytes);
                });
         } else if (key == "timeouts") {
           each(f,
                {"client_header", "client_idle", "client_body", "upstream_connect", "upstream_response",
                 "request_total", "tunnel_idle"},
                [&](const std::string& k, const Field& v) {
                  auto& t = c.timeouts;
                  Duration& field = k == "client_header"       ? t.client_header
                                    : k == "client_idle"       ? t.client_idle
                                    : k == "client_body"       ? t.client_body
                                    : k == "upstream_connect"  ? t.upstream_connect
                                    : k == "upstream_response" ? t.upstream_response
                                    : k == "tunnel_idle"       ? t.tunnel_idle
                                                               : t.request_total;
                  duration(v, field);
                });
         } else if (key == "upstream_pool") {
           each(f, {"max_idle_per_endpoint", "idle_timeout", "resolve_interval"}, [&](const std::string& k, const Field& v) {
             if (k == "max_idle_per_endpoint") integer(v, c.upstream_pool.max_idle_per_endpoint, "0 or more");
             else if (k == "resolve_interval") duration(v, c.upstream_pool.resolve_interval);
             else duration(v, c.upstream_pool.idle_timeout);
           });
         } else if (key == "routing") {
           each(f, {"environment_header"},
                [&](const std::string&, const Field& v) { string(v, c.routing.environment_header); });
         } else if (key == "resilience") {
           resilience(f, c.resilience);
         } else if (key == "load_shedding") {
           each(f, {"max_inflight_requests", "max_event_loop_lag", "max_memory"},
                [&](const std::string& k, const Field& v) {
                  auto& ls = c.load_shedding;
                  if (k == "max_inflight_requests") integer(v, ls.max_inflight_requests, "0 (off) or more");
                  else if (k == "max_event_loop_lag") duration(v, ls.max_event_loop_lag);
                  else size(v, ls.max_memory_bytes);
                });
         } else if (key == "rate_limits") {
           list(f, "rate limits", [&](const Field& item) {
             rate_limit(item, c.rate_limits.emplace_back());
           });
         } else if (key == "rate_limit_headers") {
           string(f, c.rate_limit_headers);
         } else if (key == "redis") {
           each(f, {"address", "sentinels", "sentinel_master", "password_env", "database", "connect_timeout",
                    "command_timeout", "key_prefix", "key_secret_env"},
                [&](const std::string& k, const Field& v) {
                  auto& rd = c.redis;
                  if (k == "address") string(v, rd.address);
                  else if (k == "sentinels" && (rd.sentinels.clear(), true))
                    list(v, "sentinel addresses", [&](const Field& item) { string(item, rd.sentinels.emplace_back()); });
                  else if (k == "sentinel_master") string(v, rd.sentinel_master);
                  else if (k == "password_env") string(v, rd.password_env);
                  else if (k == "database") integer(v, rd.database, "0..15");
                  else if (k == "connect_timeout") duration(v, rd.connect_timeout);
                  else if (k == "command_timeout") duration(v, rd.command_timeout);
                  else if (k == "key_secret_env") string(v, rd.key_secret_env);
                  else string(v, rd.key_prefix);
                });
         } else if (key == "postgres") {
           each(f, {"dsn", "dsn_env", "dsn_file", "replica_dsn", "replica_dsn_env", "listen_dsn", "listen_dsn_env",
                    "pool_size", "connect_timeout", "query_timeout"},
                [&](const std::string& k, const Field& v) {
                  auto& pg = c.postgres;
                  if (k == "pool_size") integer(v, pg.pool_size, "1..64");
                  else if (k == "connect_timeout") duration(v, pg.connect_timeout);
                  else if (k == "query_timeout") duration(v, pg.query_timeout);
                  else string(v, k == "dsn"               ? pg.dsn
                                 : k == "dsn_env"         ? pg.dsn_env
                                 : k == "dsn_file"        ? pg.dsn_file
                                 : k == "replica_dsn"     ? pg.replica_dsn
                                 : k == "replica_dsn_env" ? pg.replica_dsn_env
                                 : k == "listen_dsn"      ? pg.listen_dsn
                                                          : pg.listen_dsn_env);
                });
         } else if (key == "manifest_cache") {
           each(f, {"max_entries", "max_bytes", "ttl", "redis_ttl", "index_refresh"},
                [&](const std::string& k, const Field& v) {
                  auto& mc = c.manifest_cache;
                  if (k == "max_entries") integer(v, mc.max_entries, "at least 1");
                  else if (k == "max_bytes") size(v, mc.max_bytes);
                  else duration(v, k == "ttl" ? mc.ttl : k == "redis_ttl" ? mc.redis_ttl : mc.index_refresh);
                });
         } else if (key == "admin") {
           each(f, {"address", "rate_window", "token_env", "ready_requires"}, [&](const std::string& k, const Field& v) {
             if (k == "address") string(v, c.admin.address);
             else if (k == "token_env") string(v, c.admin.token_env);
             else if (k == "ready_requires" && (c.admin.ready_requires.clear(), true))
               list(v, "dependencies", [&](const Field& item) { string(item, c.admin.ready_requires.emplace_back()); });
             else duration(v, c.admin.rate_window);
           });
         } else if (key == "logging") {
           each(f, {"level", "access_log"}, [&](const std::string& k, const Field& v) {
             if (k == "level") return string(v, c.logging.level);
             each(v, {"destination", "format"}, [&](const std::string& ak, const Field& a) {
               auto& log = c.logging.access_log;
               if (ak == "destination") return string(a, log.destination);
               if (!scalar(a, "text or json")) return;
               if (a.node.Scalar() == "text") log.format = AccessLogFormat::text;
               else if (a.node.Scalar() == "json") log.format = AccessLogFormat::json;
               else error(a, shown(a.node.Scalar()) + " is not an access log format (expected text or json)");
             });
           });
         } else {
           list(f, "manifests", [&](const Field& item) {
             manifest_index_ = c.manifests.size();
             manifest(item, c.manifests.emplace_back());
           });
         }
       });
  for (const auto& d : deferred_) {
    auto& m = c.manifests[d.manifest];
    m.resilience = c.resilience;  // what the manifest does not name stays as the top level says
    resilience(Field{d.node, d.path, d.pos}, *m.resilience);
  }
}

void Parser::listener(const Field& f, ListenerConfig& l) {
  static const std::initializer_list<std::string_view> kKeys = {
      "name", "address", "default_environment", "environments", "proxy_protocol", "trusted_proxies", "tls"};
  if (!f.node.IsMap()) {
    l.name.clear();  // a placeholder keeps the indexes of the next listeners; its own checks stay quiet
    error(f, "expected a mapping with keys " + join(kKeys) + ", found " + found(f.node));
    return;
  }
  each(f, kKeys, [&](const std::string& k, const Field& v) {
    if (k == "name") string(v, l.name);
    else if (k == "address") string(v, l.address);
    else if (k == "default_environment") string(v, l.default_environment);
    else if (k == "environments")
      list(v, "environment names", [&](const Field& item) { string(item, l.environments.emplace_back()); });
    else if (k == "proxy_protocol") boolean(v, l.proxy_protocol);
    else if (k == "trusted_proxies")
      list(v, "networks", [&](const Field& item) { string(item, l.trusted_proxies.emplace_back()); });
    else if (!v.node.IsNull()) {  // `tls:` with nothing = plain HTTP
      TlsConfig& tls = l.tls.emplace();
      if (!v.node.IsMap()) {
        error(v, "expected a mapping with keys certificate_file, private_key_file, found " + found(v.node));
        return;
      }
      each(v, {"certificate_file", "private_key_file"}, [&](const std::string& tk, const Field& t) {
        string(t, tk == "certificate_file" ? tls.certificate_file : tls.private_key_file);
      });
    }
  });
}

void Parser::resilience(const Field& f, ResilienceConfig& r) {
  // A manifest overrides what it names; health checks probe endpoints, which manifests may share.
  const auto on_key = [&](const std::string& k, const Field& v) {
    if (k == "health_check") {
      each(v,
           {"path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold", "expected_status_min",
            "expected_status_max"},
           [&](const std::string& hk, const Field& hf) {
             auto& hc = r.health_check;
             if (hk == "path") string(hf, hc.path);
             else if (hk == "interval") duration(hf, hc.interval);
             else if (hk == "timeout") duration(hf, hc.timeout);
             else if (hk == "healthy_threshold") integer(hf, hc.healthy_threshold, "at least 1");
             else if (hk == "unhealthy_threshold") integer(hf, hc.unhealthy_threshold, "at least 1");
             else if (hk == "expected_status_min") integer(hf, hc.expected_status_min, "100..599");
             else integer(hf, hc.expected_status_max, "100..599");
           });
    } else if (k == "circuit_breaker") {
      each(v,
           {"consecutive_failures", "failure_rate_percent", "window", "min_requests", "open_duration",
            "half_open_max_probes", "half_open_successes_to_close", "failures", "when_all_open"},
           [&](const std::string& bk, const Field& b) {
             auto& cb = r.circuit_breaker;
             if (bk == "consecutive_failures") integer(b, cb.consecutive_failures, "0 (off) or more");
             else if (bk == "failure_rate_percent") integer(b, cb.failure_rate_percent, "0 (off)..100");
             else if (bk == "window") duration(b, cb.window);
             else if (bk == "min_requests") integer(b, cb.min_requests, "at least 1");
             else if (bk == "open_duration") duration(b, cb.open_duration);
             else if (bk == "half_open_max_probes") integer(b, cb.half_open_max_probes, "at least 1");
             else if (bk == "half_open_successes_to_close")
               integer(b, cb.half_open_successes_to_close, "at least 1");
             else if (bk == "when_all_open") string(b, cb.when_all_open);
             else if (cb.failures.clear(); true)
               list(b, "failure kinds", [&](const Field& item) { string(item, cb.failures.emplace_back()); });
           });
    } else if (k == "outlier_detection") {
      each(v,
           {"consecutive_failures", "base_ejection_time", "max_ejection_time", "max_ejection_percent",
            "when_all_ejected"},
           [&](const std::string& ok, const Field& o) {
             auto& od = r.outlier_detection;
             if (ok == "consecutive_failures") integer(o, od.consecutive_failures, "0 (off) or more");
             else if (ok == "base_ejection_time") duration(o, od.base_ejection_time);
             else if (ok == "max_ejection_time") duration(o, od.max_ejection_time);
             else if (ok == "when_all_ejected") string(o, od.when_all_ejected);
             else integer(o, od.max_ejection_percent, "0..100");
           });
    } else {
      each(v,
           {"max_attempts", "budget_percent", "min_retries_per_second", "on_reset", "on_statuses",
            "backoff_base", "backoff_max", "per_try_timeout"},
           [&](const std::string& rk, const Field& a) {
             auto& rt = r.retries;
             if (rk == "max_attempts") integer(a, rt.max_attempts, "1..10");
             else if (rk == "budget_percent") integer(a, rt.budget_percent, "0..100");
             else if (rk == "min_retries_per_second") integer(a, rt.min_retries_per_second, "0 or more");
             else if (rk == "on_reset") boolean(a, rt.on_reset);
             else if (rk == "backoff_base") duration(a, rt.backoff_base);
             else if (rk == "backoff_max") duration(a, rt.backoff_max);
             else if (rk == "per_try_timeout") duration(a, rt.per_try_timeout);
             else if (rt.on_statuses.clear(); true)  // a manifest's list replaces the inherited one
               list(a, "statuses", [&](const Field& item) {
                 integer(item, rt.on_statuses.emplace_back(), "a status 500..599");
               });
           });
    }
  };
  each(f, {"circuit_breaker", "outlier_detection", "retries", "health_check"}, on_key);
}

void Parser::rate_limit(const Field& item, RateLimitConfig& limit) {
  each(item,
       {"name", "key", "requests_per_second", "burst", "cost", "algorithm", "requests_per_window", "window",
        "scope", "on_redis_failure", "lease_interval", "ipv6_prefix"},
       [&](const std::string& k, const Field& v) {
         if (k == "name") string(v, limit.name);
         else if (k == "key") string(v, limit.key);
         else if (k == "requests_per_second") integer(v, limit.requests_per_second, "1..1000000");
         else if (k == "burst") integer(v, limit.burst, "1..1000000");
         else if (k == "cost") integer(v, limit.cost, "1..1000000");
         else if (k == "algorithm") string(v, limit.algorithm);
         else if (k == "requests_per_window") integer(v, limit.requests_per_window, "1..65535");
         else if (k == "window") duration(v, limit.window);
         else if (k == "scope") string(v, limit.scope);
         else if (k == "on_redis_failure") string(v, limit.on_redis_failure);
         else if (k == "ipv6_prefix") integer(v, limit.ipv6_prefix, "1..128");
         else duration(v, limit.lease_interval);
       });
}

void Parser::manifest(const Field& f, ManifestConfig& m) {
  static const std::initializer_list<std::string_view> kKeys = {
      "project",  "module",       "environment",        "endpoints",   "balancing",  "strip_path_prefix",
      "hash_key", "sticky_cookie", "priority",          "max_requests", "max_active_retries", "rate_limits",
      "resilience", "max_connections", "max_pending", "upgrades"};
  if (!f.node.IsMap()) {
    error(f, "expected a mapping with keys " + join(kKeys) + ", found " + found(f.node));
    return;
  }
  each(f, kKeys, [&](const std::string& k, const Field& v) {
    if (k == "project") string(v, m.project);
    else if (k == "module") string(v, m.module);
    else if (k == "environment") string(v, m.environment);
    else if (k == "balancing") string(v, m.balancing);
    else if (k == "strip_path_prefix") boolean(v, m.strip_path_prefix);
    else if (k == "hash_key") string(v, m.hash_key);
    else if (k == "sticky_cookie") string(v, m.sticky_cookie);
    else if (k == "priority") string(v, m.priority);
    else if (k == "max_requests") integer(v, m.max_requests, "0 (no limit) or more");
    else if (k == "max_active_retries") integer(v, m.max_active_retries, "0 (no limit) or more");
    else if (k == "max_connections") integer(v, m.max_connections, "0 (no limit) or more");
    else if (k == "max_pending") integer(v, m.max_pending, "0 or more");
    else if (k == "upgrades" && (m.upgrades.clear(), true))
      list(v, "upgrade tokens", [&](const Field& item) { string(item, m.upgrades.emplace_back()); });
    else if (k == "rate_limits")
      list(v, "rate limits", [&](const Field& item) { rate_limit(item, m.rate_limits.emplace_back()); });
    else if (k == "resilience") deferred_.push_back({v.node, v.path, v.pos, manifest_index_});
    else list(v, "endpoints", [&](const Field& item) { endpoint(item, m.endpoints.emplace_back()); });
  });
}

void Parser::endpoint(const Field& f, EndpointConfig& e) {
  if (f.node.IsScalar()) {  // shorthand: `- 10.0.0.1:80` (weight 1)
    e.address = f.node.Scalar();
    map_.positions[f.path + ".address"] = f.pos;
    return;
  }
  if (!f.node.IsMap()) {
    error(f, "expected an endpoint (a mapping with keys address, weight, priority, or host:port), found " +
                 found(f.node));
    return;
  }
  each(f, {"address", "weight", "priority"}, [&](const std::string& k, const Field& v) {
    if (k == "address") string(v, e.address);
    else if (k == "weight") integer(v, e.weight, "1..10000");
    else integer(v, e.priority, "0..9");
  });
}


}  // namespace detail

LoadResult load_config_string(std::string_view yaml, const std::string& source_name) {
  LoadResult result;
  if (yaml.size() > kMaxConfigBytes) {
    result.errors = too_large(source_name, yaml.size(), "a configuration");
    return result;
  }
  try {
    Config config;
    config.source = source_name;
    SourceMap map;
    YAML::Node root;
    try {
      root = YAML::Load(std::string(yaml));  // the first document only
    } catch (const YAML::Exception& e) {
      result.errors = failure(source_name, mark_position(e.mark), "invalid YAML: " + detail::printable(e.msg));
      return result;
    }
    if (auto trailing = after_first_document(yaml)) {
      result.errors = failure(source_name, trailing->first, trailing->second);
      return result;
    }
    if (auto past = values_past(root, kMaxConfigValues)) {
      result.errors = too_many_values(source_name, *past, "the configuration");
      return result;
    }
    Parser(source_name, result.errors, map).parse(root, config);
    auto semantic = detail::check(config, &map);
    result.errors.insert(result.errors.end(), semantic.begin(), semantic.end());
    detail::sort_errors(result.errors);
    detail::cap_errors(result.errors, source_name);
    if (result.errors.empty()) result.config = std::move(config);
  } catch (const std::exception& e) {
    result.config.reset();
    result.errors = failure(source_name, {}, std::string("cannot load the configuration: ") + e.what());
  }
  return result;
}

LoadResult load_config_file(const std::string& path) {
  LoadResult result;
  try {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      result.errors = failure(path, {}, "is a directory (expected a YAML configuration file)");
      return result;
    }
    // A FIFO or a device would block the open or the read (`check`, or a reload on the control
    // thread, which also answers /health): only a regular file is read.
    if (const auto type = std::filesystem::status(path, ec).type();
        type != std::filesystem::file_type::regular && type != std::filesystem::file_type::not_found &&
        type != std::filesystem::file_type::none) {
      result.errors = failure(path, {}, "is not a regular file (a FIFO, a device or a socket): expected a YAML "
                                        "configuration file");
      return result;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int saved = errno;
      result.errors = failure(path, {}, std::string("cannot open the configuration file: ") +
                                            (saved != 0 ? std::strerror(saved) : "unknown error"));
      return result;
    }
    // Read no further than one byte past the limit: a huge file (or /dev/zero) is never read whole.
    std::string text;
    char chunk[64 * 1024];
    while (text.size() <= kMaxConfigBytes && in.read(chunk, sizeof chunk).gcount() > 0)
      text.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (in.bad()) {
      result.errors = failure(path, {}, "cannot read the configuration file");
      return result;
    }
    if (text.size() > kMaxConfigBytes) {
      const auto bytes = std::filesystem::file_size(path, ec);
      result.errors = too_large(path, ec ? 0 : bytes, "a configuration");
      return result;
    }
    return load_config_string(text, path);
  } catch (const std::exception& e) {
    result.config.reset();
    result.errors = failure(path, {}, std::string("cannot read the configuration file: ") + e.what());
    return result;
  }
}

}  // namespace frontdoor::config
