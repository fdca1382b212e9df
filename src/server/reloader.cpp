#include "frontdoor/server/reloader.hpp"

#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/server/json.hpp"
#include "frontdoor/server/preflight.hpp"
#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace {


std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + json_string(items[i]);
  return out + "]";
}

// Keeps the running value of a setting that cannot change live, noting it when the file changed it.
template <class T>
void keep(const char* name, T& next, const T& running, std::vector<std::string>& restart_needed) {
  if (!(next == running)) {
    restart_needed.emplace_back(name);
    next = running;
  }
}

// Errors of the file merged with the running values kept: only the kept values, which the file
// changed, can have caused them (the file alone was valid), so each error names them.
std::vector<std::string> with_kept_settings(const std::vector<config::ConfigError>& errors,
                                            const std::vector<std::string>& kept) {
  std::string names;
  for (const auto& name : kept) names += (names.empty() ? "" : ", ") + name;
  const std::string why = "; a reload keeps the running " + names +
                          (kept.size() == 1 ? " (it changes" : " (they change") + " only with a restart)";
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.to_string() + why);
  return out;
}

}  // namespace

std::string ReloadResult::json() const {
  return fmt::format("{{\"status\":\"{}\",\"generation\":{},\"errors\":{},\"restart_needed\":{},\"file\":{}}}\n",
                     ok ? "reloaded" : "refused", generation, json_list(errors), json_list(restart_needed),
                     json_string(file));
}

std::string ConfigReloader::absolute_path(std::string path) {
  if (path.empty()) return path;
  std::error_code ec;
  auto absolute = std::filesystem::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

ReloadResult ConfigReloader::reload() {
  ReloadResult result = attempt();
  history_.push_back({std::chrono::system_clock::now(), result});
  if (history_.size() > 10) history_.pop_front();
  return result;
}

ReloadResult ConfigReloader::attempt() {
  ReloadResult result;
  result.generation = generation_;
  result.file = path_;
  const auto refuse = [&](std::vector<std::string> errors) {
    ++failed_;
    result.errors = std::move(errors);
    for (const auto& e : result.errors) spdlog::error("reload refused: {}", e);
    spdlog::error("reload refused: generation {} keeps serving", generation_);
    return result;
  };
  if (path_.empty()) return refuse({"started by `frontdoor proxy`: there is no configuration file to reload"});
  auto loaded = config::load_config_file(path_);
  if (!loaded.config) {
    std::vector<std::string> errors;
    for (const auto& e : loaded.errors) errors.push_back(e.to_string());
    return refuse(std::move(errors));
  }
  config::Config next = std::move(*loaded.config);
  // A file the process would not start with (a TLS file that is not PEM, an access log it cannot
  // open, an unset admin.token_env) is refused now, not at the next restart's crash loop.
  if (auto problems = preflight(next); !problems.empty()) {
    for (auto& p : problems) p = path_ + ": " + p + " (the process would not start with this file)";
    return refuse(std::move(problems));
  }
  // What the process built at start: threads, sockets, connections, files. (max_connections 0 was
  // resolved from the descriptor limit at start: the file writing what the start file wrote keeps
  // the resolved value; a configured limit taken out, back to 0, is a change like any other.)
  if (next.server.max_connections == written_max_connections_)
    next.server.max_connections = running_.server.max_connections;
  keep("server.workers", next.server.workers, running_.server.workers, result.restart_needed);
  keep("server.max_connections", next.server.max_connections, running_.server.max_connections, result.restart_needed);
  keep("server.drain_timeout", next.server.drain_timeout, running_.server.drain_timeout, result.restart_needed);
  keep("server.drain_delay", next.server.drain_delay, running_.server.drain_delay, result.restart_needed);
  keep("redis", next.redis, running_.redis, result.restart_needed);
  keep("logging", next.logging, running_.logging, result.restart_needed);
  keep("admin", next.admin, running_.admin, result.restart_needed);
  keep("limits.max_header_bytes", next.limits.max_header_bytes, running_.limits.max_header_bytes,
       result.restart_needed);
  keep("postgres", next.postgres, running_.postgres, result.restart_needed);
  keep("manifest_cache", next.manifest_cache, running_.manifest_cache, result.restart_needed);
  // The file was valid; what would serve is the file with those running values, and that must be
  // valid too (a global limit needs the redis the running process has; a request line must fit in
  // the running head limit).
  if (auto merged = config::validate(next); !merged.empty())
    return refuse(with_kept_settings(merged, result.restart_needed));
  std::vector<config::ConfigError> errors;
  snapshot::AddressBook used;
  auto snapshot = snapshot::build_snapshot(next, registry_, errors, &book_, &used);
  if (!snapshot) {
    std::vector<std::string> messages;
    for (const auto& e : errors) messages.push_back(e.to_string());
    return refuse(std::move(messages));
  }
  // Listeners are bound before anything changes: a port in use refuses the whole reload. Called
  // with unchanged listeners too: a certificate renewed under the same paths is read again.
  if (auto errors = apply_listeners_(next.listeners, running_.listeners); !errors.empty())
    return refuse(std::move(errors));
  if (install_) install_(snapshot);
  else
    for (const auto& w : workers_) w->install_snapshot(snapshot);
  running_ = std::move(next);
  book_ = std::move(used);
  result.ok = true;
  result.generation = ++generation_;
  ++succeeded_;
  spdlog::info("config reloaded from {}: generation {}, {} manifest(s)", path_, generation_,
               snapshot->manifests.manifests().size());
  for (const auto& name : result.restart_needed)
    spdlog::warn("reload: {} changed in the file but needs a restart: the running value stays", name);
  const std::size_t manifests = snapshot->manifests.manifests().size();
  if (cluster_capacity_ != 0 && manifests + store_slots_ > cluster_capacity_)
    spdlog::warn("reload: {} manifests{}, but cluster limits (max_requests, max_connections, max_pending) were "
                 "sized at start for {}: the last ones go unlimited until a restart",
                 manifests, store_slots_ != 0 ? " plus the manifest store's slots" : "", cluster_capacity_);
  if (after_reload_) after_reload_();  // last: the reload's own report comes first, together
  return result;
}

bool ConfigReloader::refresh_addresses(const snapshot::AddressBook& fresh) {
  snapshot::AddressBook next = book_;
  std::vector<std::string> changes;
  for (const auto& [name, addresses] : fresh) {
    auto& known = next[name];
    if (known == addresses) continue;
    const auto list = [](const std::vector<boost::asio::ip::tcp::endpoint>& a) {
      std::string out;
      for (const auto& e : a) out += (out.empty() ? "" : ", ") + e.address().to_string();
      return out.empty() ? std::string("none") : out;
    };
    changes.push_back(name + ": " + list(known) + " -> " + list(addresses));
    known = addresses;
  }
  if (changes.empty()) return false;
  std::vector<config::ConfigError> errors;
  auto snapshot = snapshot::build_snapshot(running_, registry_, errors, &next);
  if (!snapshot) {
    for (const auto& e : errors) spdlog::warn("endpoints re-resolved but not installed: {}", e.to_string());
    return false;
  }
  for (const auto& c : changes) spdlog::info("endpoint {}", c);
  book_ = std::move(next);
  if (install_) install_(snapshot);
  else
    for (const auto& w : workers_) w->install_snapshot(snapshot);
  return true;
}

}  // namespace frontdoor::server
