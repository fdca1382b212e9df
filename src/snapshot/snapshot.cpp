#include "frontdoor/snapshot/snapshot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "frontdoor/core/address.hpp"
#include "frontdoor/resilience/hash.hpp"

namespace frontdoor::snapshot {

struct EndpointRegistry::State {
  struct Held {
    std::weak_ptr<const Lease> lease;
    manifest::EndpointId id;
  };
  mutable std::mutex mutex;
  std::unordered_map<std::string, Held> by_name;
  std::vector<manifest::EndpointId> free;  // released ids, the last released first
  std::vector<std::uint32_t> incarnations;  // by id; its size is the number of ids handed out
  std::unordered_map<std::string, std::uint32_t> routes;
  std::vector<std::string> route_names{"none"};
  std::map<std::pair<std::string, std::string>, std::uint32_t> limit_counters;
  std::vector<std::pair<std::string, std::string>> limit_labels;
};

EndpointRegistry::EndpointRegistry() : state_(std::make_shared<State>()) {}
EndpointRegistry::~EndpointRegistry() = default;

std::shared_ptr<const EndpointRegistry::Lease> EndpointRegistry::lease(const std::string& name) {
  std::lock_guard lock(state_->mutex);
  auto& held = state_->by_name[name];
  if (auto live = held.lease.lock()) return live;
  // New, or its last lease is being dropped right now on another thread: that one frees its own
  // id (and leaves this entry alone, since the id here will differ).
  Lease* fresh = nullptr;
  if (!state_->free.empty()) {
    const auto id = state_->free.back();
    state_->free.pop_back();
    fresh = new Lease{id, ++state_->incarnations[id]};
  }
  else {
    fresh = new Lease{static_cast<manifest::EndpointId>(state_->incarnations.size()), 0};
    state_->incarnations.push_back(0);
  }
  std::shared_ptr<const Lease> lease(fresh, [state = state_, name](const Lease* l) {
    {
      std::lock_guard lock(state->mutex);
      const auto it = state->by_name.find(name);
      if (it != state->by_name.end() && it->second.id == l->id) state->by_name.erase(it);
      state->free.push_back(l->id);
    }
    delete l;
  });
  held = {lease, fresh->id};
  return lease;
}

std::size_t EndpointRegistry::size() const {
  std::lock_guard lock(state_->mutex);
  return state_->incarnations.size();
}

std::size_t EndpointRegistry::live() const {
  std::lock_guard lock(state_->mutex);
  return state_->incarnations.size() - state_->free.size();
}

std::vector<std::uint32_t> EndpointRegistry::incarnations() const {
  std::lock_guard lock(state_->mutex);
  return state_->incarnations;
}

std::uint32_t EndpointRegistry::route_for(const std::string& key) {
  std::lock_guard lock(state_->mutex);
  const auto [it, added] = state_->routes.try_emplace(key, static_cast<std::uint32_t>(state_->route_names.size()));
  if (added) state_->route_names.push_back(key);
  return it->second;
}

std::vector<std::string> EndpointRegistry::route_names() const {
  std::lock_guard lock(state_->mutex);
  return state_->route_names;
}

std::uint32_t EndpointRegistry::limit_counter_for(const std::string& name, const std::string& scope) {
  std::lock_guard lock(state_->mutex);
  const auto [it, added] =
      state_->limit_counters.try_emplace({name, scope}, static_cast<std::uint32_t>(state_->limit_labels.size()));
  if (added) state_->limit_labels.emplace_back(name, scope);
  return it->second;
}

std::vector<std::pair<std::string, std::string>> EndpointRegistry::limit_labels() const {
  std::lock_guard lock(state_->mutex);
  return state_->limit_labels;
}

namespace {

// Global limits without a shared secret: every replica must hash alike, so the key is public.
constexpr resilience::SipKey kPublicLimitKey{0x6672'6f6e'7464'6f6fULL, 0x722d'6c69'6d69'7473ULL};

// One random key per process, the same for every snapshot (a reload keeps the local limits' state).
resilience::SipKey process_limit_key() {
  static const resilience::SipKey key = [] {
    std::random_device random;
    const auto word = [&] { return (std::uint64_t{random()} << 32) ^ random(); };
    return resilience::SipKey{word(), word()};
  }();
  return key;
}

resilience::SipKey key_from_secret(std::string_view secret) noexcept {
  return {resilience::siphash24({0x0123456789abcdefULL, 0xfedcba9876543210ULL}, secret),
          resilience::siphash24({0x0f1e2d3c4b5a6978ULL, 0x8796a5b4c3d2e1f0ULL}, secret)};
}

manifest::Balancing balancing_of(const std::string& name) {
  if (name == "weighted") return manifest::Balancing::weighted;
  if (name == "least_connections") return manifest::Balancing::least_connections;
  if (name == "latency_aware") return manifest::Balancing::latency_aware;
  if (name == "consistent_hash") return manifest::Balancing::consistent_hash;
  if (name == "sticky") return manifest::Balancing::sticky;
  return manifest::Balancing::round_robin;
}

resilience::ResiliencePolicy policy_of(const config::ResilienceConfig& r) {
  resilience::ResiliencePolicy policy;
  policy.breaker.consecutive_failures = r.circuit_breaker.consecutive_failures;
  policy.breaker.open_duration = r.circuit_breaker.open_duration;
  policy.breaker.half_open_max_probes = r.circuit_breaker.half_open_max_probes;
  policy.breaker.half_open_successes_to_close = r.circuit_breaker.half_open_successes_to_close;
  policy.breaker.failure_rate_threshold = r.circuit_breaker.failure_rate_percent / 100.0;
  policy.breaker.window = r.circuit_breaker.window;
  policy.breaker.min_requests = r.circuit_breaker.min_requests;
  const auto counts = [&](std::string_view kind) {
    const auto& f = r.circuit_breaker.failures;
    return std::find(f.begin(), f.end(), kind) != f.end();
  };
  policy.breaker_counts_connect = counts("connect_error");
  policy.breaker_counts_timeout = counts("timeout");
  policy.breaker_counts_bad_response = counts("bad_response");
  policy.breaker_counts_5xx = counts("5xx");
  policy.try_when_all_open = r.circuit_breaker.when_all_open == "try_anyway";
  policy.fail_when_all_ejected = r.outlier_detection.when_all_ejected == "fail";
  policy.outliers.consecutive_failures = r.outlier_detection.consecutive_failures;
  policy.outliers.base_ejection_time = r.outlier_detection.base_ejection_time;
  policy.outliers.max_ejection_time = r.outlier_detection.max_ejection_time;
  policy.outliers.max_ejection_percent = r.outlier_detection.max_ejection_percent;
  policy.retry_budget.budget_percent = r.retries.budget_percent;
  policy.retry_budget.min_retries_per_second = r.retries.min_retries_per_second;
  policy.max_attempts = r.retries.max_attempts;
  policy.retry_on_reset = r.retries.on_reset;
  for (auto status : r.retries.on_statuses)
    if (status >= 500 && status < 600) policy.retry_on_statuses.set(status - 500);
  policy.backoff_base = r.retries.backoff_base;
  policy.backoff_max = r.retries.backoff_max;
  policy.per_try_timeout = r.retries.per_try_timeout;

  return policy;
}

}  // namespace

std::shared_ptr<const Snapshot> build_snapshot(const config::Config& config, EndpointRegistry& registry,
                                               std::vector<config::ConfigError>& errors, const AddressBook* book,
                                               AddressBook* used) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->config = config;
  const auto& limits = config.limits;
  snapshot->request_limits = {limits.max_request_line_bytes, limits.max_header_bytes, limits.max_header_count};
  // Upstream heads are held to the same size; a bigger one is a 502, not a crash.
  snapshot->response_limits = {limits.max_header_bytes, limits.max_header_bytes, limits.max_header_count};
  // The client buffer holds a whole request head; bodies stream through it.
  snapshot->client_buffer_bytes = std::max<std::uint32_t>(limits.max_header_bytes, 16 * 1024);
  // 32 KiB lets a 16 KiB response and its head arrive in one read.
  snapshot->upstream_buffer_bytes = std::max<std::uint32_t>(limits.max_header_bytes, 32 * 1024);

  snapshot->resilience = policy_of(config.resilience);
  const auto default_policy = std::make_shared<const resilience::ResiliencePolicy>(snapshot->resilience);
  for (const auto& rc : config.rate_limits) {
    snapshot->rate_limits.push_back(ratelimit::compile_rate_limit(rc, ""));
    snapshot->rate_limits.back().counter = registry.limit_counter_for(rc.name, "");
  }
  snapshot->local_limit_key = process_limit_key();
  snapshot->global_limit_key = kPublicLimitKey;
  if (const auto& env = config.redis.key_secret_env; !env.empty()) {
    const char* secret = std::getenv(env.c_str());
    if (secret != nullptr && std::strlen(secret) >= 16) {
      snapshot->global_limit_key = key_from_secret(secret);
      snapshot->global_limit_key_secret = true;
    } else {
      errors.push_back({config.source, 0, 0,
                        "redis.key_secret_env: the environment variable " + env +
                            (secret == nullptr ? " is not set" : " holds fewer than 16 bytes") +
                            " (expected a secret shared by the replicas)"});
    }
  }
  snapshot->ietf_rate_limit_headers = config.rate_limit_headers == "ietf" || config.rate_limit_headers == "both";
  snapshot->legacy_rate_limit_headers =
      config.rate_limit_headers == "legacy" || config.rate_limit_headers == "both";

  snapshot->default_policy = default_policy;
  std::vector<manifest::Manifest> manifests;
  for (const auto& mc : config.manifests) {
    std::vector<std::string> problems;
    const auto addresses = resolve_endpoints(mc, problems, book);
    for (auto& p : problems) errors.push_back({config.source, 0, 0, std::move(p)});
    if (problems.empty()) manifests.push_back(compile_manifest(mc, addresses, *snapshot, registry));
    if (used != nullptr && problems.empty())
      for (std::size_t i = 0; i < mc.endpoints.size(); ++i)
        if (!is_numeric_host(mc.endpoints[i].address)) (*used)[mc.endpoints[i].address] = addresses[i];
  }
  snapshot->embedded_manifests = manifests.size();
  snapshot->manifests = manifest::ManifestTable(std::move(manifests));
  name_endpoints(*snapshot, registry);
  if (!errors.empty()) return nullptr;
  return snapshot;
}

ResolvedEndpoints resolve_endpoints(const config::ManifestConfig& mc, std::vector<std::string>& errors,
                                    const AddressBook* book) {
  boost::asio::io_context resolver_context;
  boost::asio::ip::tcp::resolver resolver(resolver_context);
  ResolvedEndpoints addresses;
  for (const auto& ec : mc.endpoints) {
    if (book != nullptr) {
      if (const auto it = book->find(ec.address); it != book->end()) {
        addresses.push_back(it->second);
        continue;
      }
    }
    auto resolved = resolve_all(resolver, ec.address);
    if (!resolved) {
      errors.push_back("manifest " + mc.project + "/" + mc.module + "/" + mc.environment + ": endpoint \"" +
                       ec.address + "\": " + resolved.error());
      continue;
    }
    addresses.push_back(*resolved);
  }
  return addresses;
}

AddressBook resolve_names(const std::vector<std::string>& names, std::vector<std::string>& errors) {
  boost::asio::io_context resolver_context;
  boost::asio::ip::tcp::resolver resolver(resolver_context);
  AddressBook book;
  for (const auto& name : names) {
    auto resolved = resolve_all(resolver, name);
    if (resolved) book[name] = *resolved;
    else errors.push_back("\"" + name + "\": " + resolved.error());
  }
  return book;
}

std::vector<std::string> host_names(const std::vector<config::ManifestConfig>& manifests) {
  std::vector<std::string> names;
  for (const auto& m : manifests)
    for (const auto& e : m.endpoints)
      if (!is_numeric_host(e.address)) names.push_back(e.address);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

manifest::Manifest compile_manifest(const config::ManifestConfig& mc, const ResolvedEndpoints& addresses,
                                    Snapshot& snapshot, EndpointRegistry& registry) {
  manifest::Manifest m;
  m.project = mc.project;
  m.module = mc.module;
  m.environment = mc.environment;
  m.balancing = balancing_of(mc.balancing);
  m.strip_path_prefix = mc.strip_path_prefix;
  if (mc.hash_key.rfind("header:", 0) == 0) m.hash_key = manifest::Manifest::HashKey::header;
  else if (mc.hash_key.rfind("cookie:", 0) == 0) m.hash_key = manifest::Manifest::HashKey::cookie;
  if (m.hash_key != manifest::Manifest::HashKey::request_uri) m.hash_key_name = mc.hash_key.substr(7);
  m.sticky_cookie = mc.sticky_cookie;
  m.upgrades = mc.upgrades;
  m.max_requests = mc.max_requests;
  m.max_active_retries = mc.max_active_retries;
  m.max_connections = mc.max_connections;
  m.max_pending = mc.max_pending;
  const std::string scope = mc.project + "/" + mc.module + "/" + mc.environment;
  m.route = registry.route_for(scope);
  for (const auto& rc : mc.rate_limits) {
    m.rate_limits.push_back(ratelimit::compile_rate_limit(rc, scope));
    m.rate_limits.back().counter = registry.limit_counter_for(rc.name, scope);
  }
  m.policy = mc.resilience ? std::make_shared<const resilience::ResiliencePolicy>(policy_of(*mc.resilience))
                           : snapshot.default_policy;
  m.health_check = mc.resilience ? mc.resilience->health_check : snapshot.config.resilience.health_check;
  m.priority = mc.priority == "high"  ? manifest::Manifest::Priority::high
               : mc.priority == "low" ? manifest::Manifest::Priority::low
                                      : manifest::Manifest::Priority::normal;
  for (std::size_t i = 0; i < mc.endpoints.size() && i < addresses.size(); ++i) {
    const auto& ec = mc.endpoints[i];
    if (is_numeric_host(ec.address) && addresses[i].size() == 1) {
      auto lease = registry.lease(ec.address);
      m.endpoints.push_back({lease->id, ec.address, addresses[i][0], ec.weight, ec.priority, ec.address, lease});
      continue;
    }
    // A host name: an endpoint per address, each with state of its own that stays while the address
    // does (a headless Service's pods come and go).
    for (const auto& address : addresses[i]) {
      const auto ip = address.address();
      std::string name = ec.address + "@" + (ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string());
      auto lease = registry.lease(name);
      m.endpoints.push_back({lease->id, std::move(name), address, ec.weight, ec.priority, ec.address, lease});
    }
  }
  for (const auto& e : m.endpoints) m.has_priorities = m.has_priorities || e.priority > 0;
  const auto& o = m.policy->outliers;
  const auto& b = m.policy->retry_budget;
  std::string identity = scope + "|" + std::to_string(static_cast<int>(m.balancing)) + "|" + m.hash_key_name;
  for (const auto& e : m.endpoints)
    identity += "|" + e.name + "@" + std::to_string(e.weight) + "/" + std::to_string(e.priority);
  identity += "|" + std::to_string(o.consecutive_failures) + "," + std::to_string(o.base_ejection_time.count()) + "," +
              std::to_string(o.max_ejection_time.count()) + "," + std::to_string(o.max_ejection_percent) + "|" +
              std::to_string(b.budget_percent) + "," + std::to_string(b.min_retries_per_second) + "," +
              std::to_string(b.window.count());
  m.identity = resilience::hash64(identity);
  return m;
}

void name_endpoints(Snapshot& snapshot, const EndpointRegistry& registry) {
  snapshot.endpoint_incarnations = registry.incarnations();
  snapshot.route_names = registry.route_names();
  snapshot.rate_limit_labels = registry.limit_labels();
  snapshot.endpoint_count = snapshot.endpoint_incarnations.size();
  snapshot.endpoint_names.assign(snapshot.endpoint_count, {});
  for (const auto& m : snapshot.manifests.manifests())
    for (const auto& e : m.endpoints) snapshot.endpoint_names[e.id] = e.name;
}

}  // namespace frontdoor::snapshot
