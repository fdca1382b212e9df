#include "frontdoor/config/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <unistd.h>
#include <unordered_map>

#include "frontdoor/core/address.hpp"

namespace frontdoor::config {
namespace {

struct Position {
  int line = 0;
  int column = 0;
};

// Where each parsed value came from, by its dotted path ("listeners[0].address"), so the semantic
// checks shared with in-memory configs can still point at a line.
using Positions = std::unordered_map<std::string, Position>;

std::string join_keys(std::initializer_list<std::string_view> keys) {
  std::string out;
  for (auto k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

bool is_key_part(std::string_view s) {
  if (s == "*") return true;
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
constexpr std::string_view kBalancing[] = {"round_robin",   "weighted",        "least_connections",
                                           "latency_aware", "consistent_hash", "sticky"};

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

class Parser {
 public:
  Parser(std::string file, std::vector<ConfigError>& errors, Positions& positions)
      : file_(std::move(file)), errors_(errors), positions_(positions) {}

  void parse(const YAML::Node& root, Config& c);

 private:
  void error(const YAML::Node& node, std::string message) {
    const auto mark = node.Mark();
    errors_.push_back({file_, mark.is_null() ? 0 : mark.line + 1, mark.is_null() ? 0 : mark.column + 1,
                       std::move(message)});
  }
  void remember(const std::string& path, const YAML::Node& node) {
    const auto mark = node.Mark();
    if (!mark.is_null()) positions_[path] = {mark.line + 1, mark.column + 1};
  }

  // Calls on_key(key, value) for each entry of a mapping whose key is allowed; reports the others.
  template <class F>
  void each(const YAML::Node& node, const std::string& path, std::initializer_list<std::string_view> keys,
            F&& on_key) {
    if (!node.IsMap()) {
      if (!node.IsNull()) error(node, path + ": expected a mapping with keys: " + join_keys(keys));
      return;
    }
    std::set<std::string> seen;
    for (const auto& entry : node) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        error(key, path + ": keys must be plain names (expected one of: " + join_keys(keys) + ")");
        continue;
      }
      const std::string name = key.Scalar();
      if (std::find(keys.begin(), keys.end(), name) == keys.end()) {
        error(key, "unknown key \"" + name + "\" in " + (path.empty() ? std::string("the top level") : path) +
                       " (expected one of: " + join_keys(keys) + ")");
        continue;
      }
      if (!seen.insert(name).second) {
        error(key, "duplicate key \"" + name + "\" in " + path);
        continue;
      }
      const std::string child = path.empty() ? name : path + "." + name;
      remember(child, entry.second);
      on_key(name, entry.second, child);
    }
  }

  bool scalar(const YAML::Node& node, const std::string& path, std::string_view expected) {
    if (node.IsScalar()) return true;
    error(node, path + ": expected " + std::string(expected));
    return false;
  }

  void string(const YAML::Node& node, const std::string& path, std::string& out) {
    if (scalar(node, path, "a string")) out = node.Scalar();
  }

  template <class Int>
  void integer(const YAML::Node& node, const std::string& path, Int& out, std::uint64_t min, std::uint64_t max) {
    if (!scalar(node, path, "an integer")) return;
    const std::string& text = node.Scalar();
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
      error(node, path + ": \"" + text + "\" is not a non-negative integer");
      return;
    }
    if (value < min || value > max) {
      error(node, path + ": " + text + " is out of range (expected " + std::to_string(min) + ".." +
                      std::to_string(max) + ")");
      return;
    }
    out = static_cast<Int>(value);
  }

  template <class Int>
  void size(const YAML::Node& node, const std::string& path, Int& out, std::uint64_t max) {
    if (!scalar(node, path, "a size")) return;
    std::uint64_t value = 0;
    if (!parse_size(node.Scalar(), value)) {
      error(node, path + ": \"" + node.Scalar() + "\" is not a size (expected bytes, or e.g. 8KiB, 1MiB, 1GiB)");
      return;
    }
    if (value > max) {
      error(node, path + ": " + node.Scalar() + " is too large (at most " + std::to_string(max) + " bytes)");
      return;
    }
    out = static_cast<Int>(value);
  }

  void duration(const YAML::Node& node, const std::string& path, Duration& out) {
    if (!scalar(node, path, "a duration")) return;
    if (!parse_duration(node.Scalar(), out))
      error(node, path + ": \"" + node.Scalar() + "\" is not a duration (expected e.g. 250ms, 10s, 2m, 1h)");
  }

  void boolean(const YAML::Node& node, const std::string& path, bool& out) {
    if (!scalar(node, path, "true or false")) return;
    const std::string& v = node.Scalar();
    if (v == "true" || v == "yes" || v == "on") out = true;
    else if (v == "false" || v == "no" || v == "off") out = false;
    else error(node, path + ": \"" + v + "\" is not a boolean (expected true or false)");
  }

  template <class F>
  void list(const YAML::Node& node, const std::string& path, F&& on_item) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
      error(node, path + ": expected a list");
      return;
    }
    for (std::size_t i = 0; i < node.size(); ++i) {
      const std::string item = path + "[" + std::to_string(i) + "]";
      remember(item, node[i]);
      on_item(node[i], item);
    }
  }

  std::string file_;
  std::vector<ConfigError>& errors_;
  Positions& positions_;
};

void Parser::parse(const YAML::Node& root, Config& c) {
  if (root.IsNull()) {
    error(root, "the configuration is empty (expected at least `listeners:`)");
    return;
  }
  each(root, "", {"server", "listeners", "limits", "timeouts", "upstream_pool", "routing", "logging", "manifests"},
       [&](const std::string& key, const YAML::Node& v, const std::string& path) {
         if (key == "server") {
           each(v, path, {"workers", "drain_timeout", "max_connections"},
                [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                  if (k == "workers") integer(n, p, c.server.workers, 0, 1024);
                  else if (k == "drain_timeout") duration(n, p, c.server.drain_timeout);
                  else integer(n, p, c.server.max_connections, 1, 10'000'000);
                });
         } else if (key == "listeners") {
           c.listeners.clear();
           list(v, path, [&](const YAML::Node& item, const std::string& ipath) {
             ListenerConfig l;
             if (!item.IsMap()) {
               error(item, ipath + ": expected a mapping with keys: name, address, default_environment, tls");
               return;
             }
             each(item, ipath, {"name", "address", "default_environment", "tls"},
                  [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                    if (k == "name") string(n, p, l.name);
                    else if (k == "address") string(n, p, l.address);
                    else if (k == "default_environment") string(n, p, l.default_environment);
                    else {
                      TlsConfig tls;
                      each(n, p, {"certificate_file", "private_key_file"},
                           [&](const std::string& tk, const YAML::Node& tn, const std::string& tp) {
                             string(tn, tp, tk == "certificate_file" ? tls.certificate_file : tls.private_key_file);
                           });
                      if (n.IsMap()) l.tls = tls;
                    }
                  });
             c.listeners.push_back(std::move(l));
           });
         } else if (key == "limits") {
           each(v, path, {"max_request_line_bytes", "max_header_bytes", "max_header_count", "max_body_bytes"},
                [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                  if (k == "max_request_line_bytes") size(n, p, c.limits.max_request_line_bytes, 1u << 20);
                  else if (k == "max_header_bytes") size(n, p, c.limits.max_header_bytes, 1u << 20);
                  else if (k == "max_header_count") integer(n, p, c.limits.max_header_count, 1, 10000);
                  else size(n, p, c.limits.max_body_bytes, UINT64_MAX);
                });
         } else if (key == "timeouts") {
           each(v, path,
                {"client_header", "client_idle", "client_body", "upstream_connect", "upstream_response",
                 "request_total"},
                [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                  auto& t = c.timeouts;
                  Duration* field = k == "client_header"       ? &t.client_header
                                    : k == "client_idle"       ? &t.client_idle
                                    : k == "client_body"       ? &t.client_body
                                    : k == "upstream_connect"  ? &t.upstream_connect
                                    : k == "upstream_response" ? &t.upstream_response
                                                               : &t.request_total;
                  duration(n, p, *field);
                });
         } else if (key == "upstream_pool") {
           each(v, path, {"max_idle_per_endpoint", "idle_timeout"},
                [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                  if (k == "max_idle_per_endpoint") integer(n, p, c.upstream_pool.max_idle_per_endpoint, 0, 100000);
                  else duration(n, p, c.upstream_pool.idle_timeout);
                });
         } else if (key == "routing") {
           each(v, path, {"environment_header"}, [&](const std::string&, const YAML::Node& n, const std::string& p) {
             string(n, p, c.routing.environment_header);
           });
         } else if (key == "logging") {
           each(v, path, {"level", "access_log"}, [&](const std::string& k, const YAML::Node& n, const std::string& p) {
             if (k == "level") {
               string(n, p, c.logging.level);
               return;
             }
             each(n, p, {"destination", "format"}, [&](const std::string& ak, const YAML::Node& an, const std::string& ap) {
               if (ak == "destination") {
                 string(an, ap, c.logging.access_log.destination);
               } else if (scalar(an, ap, "text or json")) {
                 if (an.Scalar() == "text") c.logging.access_log.format = AccessLogFormat::text;
                 else if (an.Scalar() == "json") c.logging.access_log.format = AccessLogFormat::json;
                 else error(an, ap + ": \"" + an.Scalar() + "\" is not a format (expected text or json)");
               }
             });
           });
         } else {  // manifests
           list(v, path, [&](const YAML::Node& item, const std::string& mpath) {
             ManifestConfig m;
             if (!item.IsMap()) {
               error(item, mpath + ": expected a mapping (project, module, environment, endpoints, ...)");
               return;
             }
             each(item, mpath, {"project", "module", "environment", "endpoints", "balancing", "strip_path_prefix"},
                  [&](const std::string& k, const YAML::Node& n, const std::string& p) {
                    if (k == "project") string(n, p, m.project);
                    else if (k == "module") string(n, p, m.module);
                    else if (k == "environment") string(n, p, m.environment);
                    else if (k == "balancing") string(n, p, m.balancing);
                    else if (k == "strip_path_prefix") boolean(n, p, m.strip_path_prefix);
                    else
                      list(n, p, [&](const YAML::Node& e, const std::string& epath) {
                        EndpointConfig endpoint;
                        if (e.IsScalar()) {  // shorthand: "- 10.0.0.1:80"
                          endpoint.address = e.Scalar();
                          remember(epath + ".address", e);
                        } else {
                          each(e, epath, {"address", "weight"},
                               [&](const std::string& ek, const YAML::Node& en, const std::string& ep) {
                                 if (ek == "address") string(en, ep, endpoint.address);
                                 else integer(en, ep, endpoint.weight, 1, 10000);
                               });
                        }
                        m.endpoints.push_back(std::move(endpoint));
                      });
                  });
             c.manifests.push_back(std::move(m));
           });
         }
       });
}

// The semantic checks, shared by files and configs built in memory.
std::vector<ConfigError> check(const Config& c, const Positions& positions) {
  std::vector<ConfigError> errors;
  auto add = [&](const std::string& path, std::string message) {
    // The most specific known position: the path itself, else its nearest parent.
    std::string p = path;
    Position pos;
    for (;;) {
      if (auto it = positions.find(p); it != positions.end()) {
        pos = it->second;
        break;
      }
      const auto cut = p.find_last_of(".[");
      if (cut == std::string::npos) break;
      p.resize(cut);
    }
    errors.push_back({c.source, pos.line, pos.column, path + ": " + std::move(message)});
  };

  if (c.listeners.empty()) add("listeners", "at least one listener is required");
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.listeners.size(); ++i) {
    const auto& l = c.listeners[i];
    const std::string path = "listeners[" + std::to_string(i) + "]";
    if (l.name.empty()) add(path + ".name", "must not be empty");
    else if (!names.insert(l.name).second) add(path + ".name", "\"" + l.name + "\" is used by another listener");
    if (!split_host_port(l.address))
      add(path + ".address", "\"" + l.address + "\" is not host:port (e.g. 0.0.0.0:8080, [::]:8080)");
    if (!is_key_part(l.default_environment) || l.default_environment == "*")
      add(path + ".default_environment", "\"" + l.default_environment + "\" is not an environment name");
    if (l.tls) {
      for (const auto& [key, file] : {std::pair<std::string, std::string>{"certificate_file", l.tls->certificate_file},
                                      {"private_key_file", l.tls->private_key_file}}) {
        if (file.empty()) add(path + ".tls." + key, "is required");
        else if (::access(file.c_str(), R_OK) != 0) add(path + ".tls." + key, "cannot read \"" + file + "\"");
      }
    }
  }
  const auto& lim = c.limits;
  if (lim.max_request_line_bytes < 64) add("limits.max_request_line_bytes", "must be at least 64 bytes");
  if (lim.max_header_bytes < lim.max_request_line_bytes)
    add("limits.max_header_bytes", "must be at least limits.max_request_line_bytes");
  if (lim.max_header_count < 1) add("limits.max_header_count", "must be at least 1");
  if (c.server.max_connections < 1) add("server.max_connections", "must be at least 1");
  if (c.server.workers > 1024) add("server.workers", "must be at most 1024 (0 = one per core)");
  const auto& t = c.timeouts;
  for (const auto& [key, value] : {std::pair<const char*, Duration>{"client_header", t.client_header},
                                   {"client_idle", t.client_idle},
                                   {"client_body", t.client_body},
                                   {"upstream_connect", t.upstream_connect},
                                   {"upstream_response", t.upstream_response}}) {
    if (value.count() <= 0) add(std::string("timeouts.") + key, "must be greater than 0");
  }
  if (t.request_total.count() < 0) add("timeouts.request_total", "must not be negative (0 = no limit)");
  if (c.server.drain_timeout.count() < 0) add("server.drain_timeout", "must not be negative");
  if (c.upstream_pool.idle_timeout.count() <= 0) add("upstream_pool.idle_timeout", "must be greater than 0");
  if (!is_token(c.routing.environment_header))
    add("routing.environment_header", "\"" + c.routing.environment_header + "\" is not a header name");
  if (!one_of(c.logging.level, kLevels))
    add("logging.level", "\"" + c.logging.level + "\" is not a level (expected one of: " + list_of(kLevels) + ")");
  if (c.logging.access_log.destination.empty())
    add("logging.access_log.destination", "must not be empty (off, stdout, stderr or a file path)");

  std::set<std::string> keys;
  for (std::size_t i = 0; i < c.manifests.size(); ++i) {
    const auto& m = c.manifests[i];
    const std::string path = "manifests[" + std::to_string(i) + "]";
    for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"project", &m.project},
                                     {"module", &m.module},
                                     {"environment", &m.environment}}) {
      if (!is_key_part(*value))
        add(path + "." + key, "\"" + *value + "\" is not valid (expected [A-Za-z0-9._-]+ or \"*\")");
    }
    if (!keys.insert(m.project + "/" + m.module + "/" + m.environment).second)
      add(path, "another manifest has the same project/module/environment " + m.project + "/" + m.module + "/" +
                    m.environment);
    if (m.endpoints.empty()) add(path + ".endpoints", "at least one endpoint is required");
    for (std::size_t j = 0; j < m.endpoints.size(); ++j) {
      const auto& e = m.endpoints[j];
      const std::string epath = path + ".endpoints[" + std::to_string(j) + "]";
      const auto hp = split_host_port(e.address);
      if (!hp || hp->port == 0)
        add(epath + ".address", "\"" + e.address + "\" is not host:port with a port 1..65535");
      if (e.weight < 1 || e.weight > 10000) add(epath + ".weight", "must be 1..10000");
    }
    if (!one_of(m.balancing, kBalancing))
      add(path + ".balancing", "\"" + m.balancing + "\" is not a policy (expected one of: " + list_of(kBalancing) + ")");
  }
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return a.line != b.line ? (a.line != 0 && (b.line == 0 || a.line < b.line)) : a.column < b.column;
  });
  return errors;
}

std::string quote(const std::string& s) {
  // Double-quoted YAML scalar: safe for any content.
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

bool parse_duration(std::string_view text, Duration& out) {
  if (text == "0") {
    out = Duration(0);
    return true;
  }
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 9) return false;
  std::uint64_t value = 0;
  std::from_chars(text.data(), text.data() + digits, value);
  const std::string_view unit = text.substr(digits);
  std::uint64_t ms;
  if (unit == "ms") ms = value;
  else if (unit == "s") ms = value * 1000;
  else if (unit == "m") ms = value * 60'000;
  else if (unit == "h") ms = value * 3'600'000;
  else return false;
  out = Duration(static_cast<Duration::rep>(ms));
  return true;
}

bool parse_size(std::string_view text, std::uint64_t& out) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 19) return false;
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc()) return false;
  std::string_view unit = text.substr(digits);
  unsigned shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "k" || unit == "K" || unit == "KiB") shift = 10;
  else if (unit == "m" || unit == "M" || unit == "MiB") shift = 20;
  else if (unit == "g" || unit == "G" || unit == "GiB") shift = 30;
  else return false;
  if (shift != 0 && value > (UINT64_MAX >> shift)) return false;
  out = value << shift;
  return true;
}

std::string format_duration(Duration d) {
  const auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

LoadResult load_config_string(std::string_view yaml, const std::string& source_name) {
  LoadResult result;
  Config config;
  config.source = source_name;
  Positions positions;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    Parser(source_name, result.errors, positions).parse(root, config);
  } catch (const YAML::Exception& e) {
    result.errors.push_back({source_name, e.mark.is_null() ? 0 : e.mark.line + 1,
                             e.mark.is_null() ? 0 : e.mark.column + 1, "invalid YAML: " + e.msg});
    return result;
  } catch (const std::exception& e) {
    result.errors.push_back({source_name, 0, 0, std::string("cannot read configuration: ") + e.what()});
    return result;
  }
  auto semantic = check(config, positions);
  result.errors.insert(result.errors.end(), semantic.begin(), semantic.end());
  std::stable_sort(result.errors.begin(), result.errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return a.line != b.line ? (a.line != 0 && (b.line == 0 || a.line < b.line)) : a.column < b.column;
  });
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

LoadResult load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.errors.push_back({path, 0, 0, "cannot open the configuration file"});
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return load_config_string(text.str(), path);
}

std::vector<ConfigError> validate(const Config& config) { return check(config, {}); }

std::string to_yaml(const Config& c) {
  std::ostringstream y;
  y << "# frontdoor configuration — every key, defaults included (docs/configuration.md)\n";
  y << "server:\n"
    << "  workers: " << c.server.workers << "              # 0 = one per core\n"
    << "  drain_timeout: " << format_duration(c.server.drain_timeout) << "\n"
    << "  max_connections: " << c.server.max_connections << "\n";
  y << "listeners:\n";
  for (const auto& l : c.listeners) {
    y << "  - name: " << quote(l.name) << "\n"
      << "    address: " << quote(l.address) << "\n"
      << "    default_environment: " << quote(l.default_environment) << "\n";
    if (l.tls)
      y << "    tls:\n      certificate_file: " << quote(l.tls->certificate_file)
        << "\n      private_key_file: " << quote(l.tls->private_key_file) << "\n";
  }
  y << "limits:\n"
    << "  max_request_line_bytes: " << c.limits.max_request_line_bytes << "\n"
    << "  max_header_bytes: " << c.limits.max_header_bytes << "\n"
    << "  max_header_count: " << c.limits.max_header_count << "\n"
    << "  max_body_bytes: " << c.limits.max_body_bytes << "        # 0 = unlimited\n";
  const auto& t = c.timeouts;
  y << "timeouts:\n"
    << "  client_header: " << format_duration(t.client_header) << "\n"
    << "  client_idle: " << format_duration(t.client_idle) << "\n"
    << "  client_body: " << format_duration(t.client_body) << "\n"
    << "  upstream_connect: " << format_duration(t.upstream_connect) << "\n"
    << "  upstream_response: " << format_duration(t.upstream_response) << "\n"
    << "  request_total: " << format_duration(t.request_total) << "       # 0s = no limit\n";
  y << "upstream_pool:\n"
    << "  max_idle_per_endpoint: " << c.upstream_pool.max_idle_per_endpoint << "\n"
    << "  idle_timeout: " << format_duration(c.upstream_pool.idle_timeout) << "\n";
  y << "routing:\n  environment_header: " << quote(c.routing.environment_header) << "\n";
  y << "logging:\n  level: " << quote(c.logging.level) << "\n  access_log:\n    destination: "
    << quote(c.logging.access_log.destination) << "\n    format: "
    << (c.logging.access_log.format == AccessLogFormat::json ? "json" : "text") << "\n";
  y << "manifests:\n";
  if (c.manifests.empty()) y << "  []\n";
  for (const auto& m : c.manifests) {
    y << "  - project: " << quote(m.project) << "\n"
      << "    module: " << quote(m.module) << "\n"
      << "    environment: " << quote(m.environment) << "\n"
      << "    balancing: " << quote(m.balancing) << "\n"
      << "    strip_path_prefix: " << (m.strip_path_prefix ? "true" : "false") << "\n"
      << "    endpoints:\n";
    for (const auto& e : m.endpoints)
      y << "      - address: " << quote(e.address) << "\n        weight: " << e.weight << "\n";
  }
  return y.str();
}

}  // namespace frontdoor::config
