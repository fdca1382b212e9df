#pragma once
// Manifest: the routing and policy document of one service, keyed by (project, module, environment).
// Immutable once built; workers read it through the snapshot they pinned, from any thread.
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "frontdoor/ratelimit/compiled_limit.hpp"
#include "frontdoor/resilience/policy.hpp"

namespace frontdoor::manifest {

// Stable identity of an upstream endpoint across manifest and config versions: per-worker mutable
// state (connection pools, later breaker and latency) is indexed by it.
using EndpointId = std::uint32_t;

enum class Balancing : std::uint8_t { round_robin, weighted, least_connections, latency_aware, consistent_hash,
                                      sticky };

struct EndpointSpec {
  EndpointId id;
  // Its identity in logs, metrics, hashing and sticky cookies: "host:port" as configured for a
  // numeric address; "host:port@address" for each address a host name resolves to.
  std::string name;
  boost::asio::ip::tcp::endpoint address;
  std::uint32_t weight;
  std::uint32_t priority = 0;  // failover level, 0 first
  std::string authority;  // "host:port" as configured: Host for HTTP/1.0 requests and health checks
  // Keeps `id` this name's while the spec lives (snapshot::EndpointRegistry::Lease; opaque here).
  std::shared_ptr<const void> lease;
};

struct Manifest {
  std::string project;
  std::string module;
  std::string environment;
  std::vector<EndpointSpec> endpoints;  // never empty
  Balancing balancing = Balancing::round_robin;
  bool strip_path_prefix = false;
  enum class HashKey : std::uint8_t { request_uri, header, cookie };
  HashKey hash_key = HashKey::request_uri;
  std::string hash_key_name;  // header or cookie name
  std::string sticky_cookie;
  std::vector<std::string> upgrades;  // Upgrade tokens tunnelled after a 101 (config: upgrades)
  enum class Priority : std::uint8_t { low, normal, high };
  Priority priority = Priority::normal;
  std::uint32_t max_requests = 0;        // 0 = no limit
  std::uint32_t max_active_retries = 0;  // 0 = no limit
  std::uint32_t max_connections = 0;     // 0 = no limit
  std::uint32_t max_pending = 0;
  bool has_priorities = false;  // some endpoint has priority > 0 (failover levels in use)
  std::vector<ratelimit::CompiledRateLimit> rate_limits;  // this manifest's own, after the top-level ones
  // Breaker, ejection and retry settings: the manifest's overrides, else the top level's. Never null
  // in a built snapshot.
  std::shared_ptr<const resilience::ResiliencePolicy> policy;
  config::HealthCheckSettings health_check;  // its own, else the top level's (path empty: none)
  std::uint32_t index = 0;  // position in its table: per-worker picker state is indexed by it
  std::uint32_t route = 0;  // its key's stable id for the per-route metrics (0: none)
  // What per-worker manifest state (pickers, outlier detector, retry budget) is built from: key,
  // balancing, endpoints, outlier and budget settings. State found at `index` with another identity
  // belongs to another manifest (a reload, a stored manifest's new version or slot) and is rebuilt.
  std::uint64_t identity = 0;
};

// Which manifest serves a request: the most specific of (project, module, environment) with "*"
// wildcards, project first. Lookup allocates nothing.
// Only the first `searchable` manifests are found by find(); the rest (the manifest store's, see
// StoredIndex) are reached by index. Manifest::index is each one's position.
class ManifestTable {
 public:
  ManifestTable() = default;
  explicit ManifestTable(std::vector<Manifest> manifests, std::size_t searchable = SIZE_MAX);

  const Manifest* find(std::string_view project, std::string_view module, std::string_view environment) const noexcept;
  const std::vector<Manifest>& manifests() const noexcept { return manifests_; }

 private:
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::vector<Manifest> manifests_;
  std::unordered_map<std::string, std::uint32_t, KeyHash, std::equal_to<>> by_key_;
  std::uint8_t patterns_present_ = 0;  // bit i: some key has wildcard pattern i (see find)
};

// What the manifest store holds, as the workers see it (published with each snapshot): every stored
// key (the store's index, so a key absent from the store costs no query) and, for those whose
// document is loaded (L1), its manifest's position in the snapshot's ManifestTable. Immutable;
// read by any worker without a lock. `refresh_asked` is the one mutable bit: the first worker to
// see an entry due for refresh asks for it, once.
struct StoredEntry {
  std::string key;              // "project/module/environment", as the store's requests name it
  std::int32_t manifest = -1;   // index in the snapshot's table; -1: not loaded (a request waits for it)
  std::uint64_t version = 0;    // of the loaded document (0: not loaded)
  std::chrono::steady_clock::time_point refresh_at{};  // then refreshed in the background
  std::chrono::steady_clock::time_point expires_at{};  // then a request waits for a fresh copy
  bool stale = false;  // its last fetch failed: the last good copy serves (stale-if-error), retried
  std::shared_ptr<std::atomic<bool>> refresh_asked = std::make_shared<std::atomic<bool>>(false);
};

class StoredIndex {
 public:
  void add(std::string_view project, std::string_view module, std::string_view environment, StoredEntry entry);
  // The most specific stored key matching the request (the rules of ManifestTable::find); null: none.
  const StoredEntry* find(std::string_view project, std::string_view module,
                          std::string_view environment) const noexcept;
  std::size_t size() const noexcept { return entries_.size(); }
  // False until the store first read its index (or gave up for now): a request then waits for it
  // rather than take the embedded manifests for a key the store may hold.
  bool known() const noexcept { return known_; }
  void set_known(bool known) noexcept { known_ = known; }

 private:
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, StoredEntry, KeyHash, std::equal_to<>> entries_;
  bool known_ = true;
  std::uint8_t patterns_present_ = 0;
};

// The parts of a request target that route it: /{project}/{module}/rest?query. A segment's name
// ends at a ';' (its path parameters). The target's path is normalised first (http/path.hpp).
struct RouteKey {
  std::string_view project;
  std::string_view module;
  std::string_view rest;  // from the slash after module (or empty), query included
};
RouteKey split_route(std::string_view target) noexcept;

}  // namespace frontdoor::manifest
