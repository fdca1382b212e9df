#pragma once
// Snapshot: a validated Config compiled for the data plane — resolved endpoints, the manifest table,
// limits as the parsers want them. Immutable; the control thread builds it, workers pin it per request.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "frontdoor/config/config.hpp"
#include "frontdoor/config/loader.hpp"
#include "frontdoor/http/message_head.hpp"
#include "frontdoor/manifest/manifest.hpp"
#include "frontdoor/resilience/hash.hpp"
#include "frontdoor/resilience/policy.hpp"
#include "frontdoor/ratelimit/compiled_limit.hpp"

namespace frontdoor::snapshot {

// Hands out endpoint ids by name ("host:port", or "host:port@address" for each address of a host
// name). A name keeps its id while any manifest of any live snapshot lists it: the lease stored in
// each EndpointSpec holds it. Once the last lease is gone (every snapshot listing the name retired,
// and every request pinned to one finished), the id is free for another name. Without that, a
// headless Service's address churn would grow every by-id table (pools, breakers, metric series)
// for good. A reused id comes with a new incarnation: a worker seeing one reset what it kept for
// the id (see Snapshot::endpoint_incarnations).
// lease() and the counters: control thread. Leases may be dropped on any thread.
class EndpointRegistry {
 public:
  struct Lease {
    manifest::EndpointId id;
    std::uint32_t incarnation;
  };
  EndpointRegistry();
  ~EndpointRegistry();
  EndpointRegistry(const EndpointRegistry&) = delete;
  EndpointRegistry& operator=(const EndpointRegistry&) = delete;

  // The id of `name`, held for as long as the returned lease (or a copy of it) lives.
  std::shared_ptr<const Lease> lease(const std::string& name);
  // Ids handed out so far: every id is below it (the size of the by-id tables).
  std::size_t size() const;
  // Names holding an id now.
  std::size_t live() const;
  // Incarnation of each id below size(): bumped each time the id goes to another name.
  std::vector<std::uint32_t> incarnations() const;

  // Stable ids for what the metrics count per route and per rate limit, so that a reload that
  // inserts, removes or reorders manifests (or a manifest-store slot taken by another key) never
  // moves one's history onto another's name. Never reused: the names stay those ever configured.
  // A route per manifest key "project/module/environment" (1-based; 0 is "none").
  std::uint32_t route_for(const std::string& key);
  std::vector<std::string> route_names() const;  // by route id, "none" first
  // A counter per rate limit (its name, and its manifest's key; "" at the top level).
  std::uint32_t limit_counter_for(const std::string& name, const std::string& scope);
  std::vector<std::pair<std::string, std::string>> limit_labels() const;  // by counter id

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the leases: one dropped after the registry is safe
};

struct Snapshot {
  config::Config config;
  http::HeadLimits request_limits;
  http::HeadLimits response_limits;
  manifest::ManifestTable manifests;  // the embedded ones (searchable) first, then the store's loaded ones
  std::size_t embedded_manifests = 0;
  // The manifest store's view (docs/manifests.md): null when no store is configured. A stored key
  // that matches a request wins over every embedded manifest.
  std::shared_ptr<const manifest::StoredIndex> stored;
  std::shared_ptr<const resilience::ResiliencePolicy> default_policy;  // the top level's
  std::size_t endpoint_count = 0;  // every EndpointId in this snapshot is below it
  // By EndpointId (endpoint_count of them): which name's turn of the id this is. A worker that
  // finds an id's incarnation changed forgets its pool, breaker and load for it (EndpointRegistry).
  std::vector<std::uint32_t> endpoint_incarnations;
  std::uint32_t client_buffer_bytes = 0;
  std::uint32_t upstream_buffer_bytes = 0;
  resilience::ResiliencePolicy resilience;
  std::vector<ratelimit::CompiledRateLimit> rate_limits;
  // For metrics: every rate limit ever configured as {limit, manifest}, by
  // ratelimit::CompiledRateLimit::counter (EndpointRegistry::limit_labels); endpoint names by EndpointId.
  std::vector<std::pair<std::string, std::string>> rate_limit_labels;
  std::vector<std::string> endpoint_names;  // "" for an id no manifest here lists
  std::vector<std::string> route_names;     // by Manifest::route (EndpointRegistry::route_names)
  // Keys of the rate-limit key hash (SipHash): local limits use a random key of this process (the
  // same across reloads), global ones the replicas' shared secret (redis.key_secret_env) or, without
  // one, a fixed key.
  resilience::SipKey local_limit_key;
  resilience::SipKey global_limit_key;
  bool global_limit_key_secret = false;  // global_limit_key came from the secret
  bool ietf_rate_limit_headers = true;
  bool legacy_rate_limit_headers = false;
};

// What host names resolved to: "host:port" as configured -> every address (sorted).
using AddressBook = std::map<std::string, std::vector<boost::asio::ip::tcp::endpoint>>;

// Resolves host names (blocking: control thread or CLI only), except those `book` has; `used`, when
// given, receives what every host name resolved to. Errors name the manifest and endpoint.
std::shared_ptr<const Snapshot> build_snapshot(const config::Config& config, EndpointRegistry& registry,
                                               std::vector<config::ConfigError>& errors,
                                               const AddressBook* book = nullptr, AddressBook* used = nullptr);

// Resolves `names` ("host:port"), blocking (a thread of its own). A name that does not resolve is
// left out, with its error in `errors`: the caller keeps what it resolved to before.
AddressBook resolve_names(const std::vector<std::string>& names, std::vector<std::string>& errors);
// The host names (not numeric addresses) of these manifests' endpoints.
std::vector<std::string> host_names(const std::vector<config::ManifestConfig>& manifests);

// One manifest's endpoint addresses, resolved (blocking: never on a worker), one list per
// configured endpoint (a host name may have several); names `book` has are taken from it. Errors,
// one per endpoint that does not resolve, name the manifest and the endpoint.
using ResolvedEndpoints = std::vector<std::vector<boost::asio::ip::tcp::endpoint>>;
ResolvedEndpoints resolve_endpoints(const config::ManifestConfig& mc, std::vector<std::string>& errors,
                                    const AddressBook* book = nullptr);

// The data-plane form of `mc` (its endpoints already resolved, in order): one EndpointSpec per
// numeric endpoint and per address of a host name, endpoint ids from `registry`, its rate limits'
// counters appended to `snapshot.rate_limit_labels`. Control thread.
manifest::Manifest compile_manifest(const config::ManifestConfig& mc, const ResolvedEndpoints& addresses,
                                    Snapshot& snapshot, EndpointRegistry& registry);

// endpoint_count, endpoint_incarnations and endpoint_names from the registry and the table's manifests.
void name_endpoints(Snapshot& snapshot, const EndpointRegistry& registry);

}  // namespace frontdoor::snapshot
