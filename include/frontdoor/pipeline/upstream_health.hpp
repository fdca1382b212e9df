#pragma once
// UpstreamHealth: what one worker has learned about its upstreams — a circuit breaker per endpoint
// (by stable EndpointId, so it survives a new snapshot), and per manifest the round-robin cursor,
// the passive outlier detector and the retry budget. The algorithms are the pure state machines of
// frontdoor::resilience; this type only keeps them and maps request outcomes onto them.
// Worker thread only; rebuilt per manifest when a snapshot is installed.
#include <functional>
#include <memory>
#include <vector>

#include "frontdoor/core/error.hpp"
#include "frontdoor/snapshot/snapshot.hpp"
#include "frontdoor/resilience/policy.hpp"
#include "frontdoor/resilience/pickers.hpp"
#include "frontdoor/resilience/random.hpp"
#include "frontdoor/resilience/retry_budget.hpp"

namespace frontdoor::pipeline {

class UpstreamHealth {
 public:
  // Per manifest: the picker its balancing policy needs (built once from the endpoint list), the
  // outlier detector and the retry budget.
  struct ManifestState {
    ManifestState(const manifest::Manifest& m, const resilience::ResiliencePolicy& policy, std::size_t rotation);
    resilience::RoundRobinPicker round_robin;
    resilience::SmoothWeightedPicker weighted;
    resilience::LeastOutstandingPicker least_outstanding;
    resilience::PowerOfTwoPicker two_choices;
    std::unique_ptr<resilience::ConsistentHashRing> ring;  // consistent_hash only
    resilience::OutlierDetector outliers;
    resilience::RetryBudget budget;
    std::uint64_t identity;  // of the manifest it was built for (Manifest::identity)
  };

  // What the balancers learn per endpoint (by id): requests in flight and a latency average.
  struct EndpointLoad {
    std::uint32_t inflight = 0;
    resilience::EwmaLatency latency{std::chrono::seconds(10)};
  };

  explicit UpstreamHealth(resilience::ResiliencePolicy policy = {}) : policy_(std::move(policy)) {}

  // Where this worker's round robin starts in every manifest's list (its worker index): two workers
  // serving two fresh connections send them to different endpoints. Before install().
  void set_rotation(std::size_t offset) noexcept { rotation_ = offset; }
  // Takes the snapshot's policies; breakers keep their state across snapshots.
  void install(const snapshot::Snapshot& snapshot);
  const resilience::ResiliencePolicy& policy() const noexcept { return policy_; }
  // The manifest's own settings (its overrides), else the top level's.
  const resilience::ResiliencePolicy& policy(const manifest::Manifest& m) const noexcept { return m.policy ? *m.policy : policy_; }

  resilience::CircuitBreaker& breaker(manifest::EndpointId id);
  ManifestState& state(const manifest::Manifest& m);

  // One attempt's outcome: the breaker counts connect errors, timeouts and broken responses; the
  // outlier detector also counts 5xx answers. A client hanging up counts for neither.
  // `latency`: time to the response head, zero when there was none.
  void report(const manifest::Manifest& m, std::size_t index, Error outcome, unsigned status,
              resilience::Duration latency, resilience::TimePoint now) noexcept;

  EndpointLoad& load(manifest::EndpointId id);
  // The id now names another endpoint (snapshot::EndpointRegistry): its breaker, load and health
  // verdict start over.
  void forget(manifest::EndpointId id) noexcept;
  // Active health check verdicts, fanned out by the control thread (posted to this worker).
  void set_checked_healthy(manifest::EndpointId id, bool healthy);
  bool checked_down(manifest::EndpointId id) const noexcept { return id < down_.size() && down_[id]; }
  std::uint64_t random() noexcept { return random_.next(); }

  // Called when one of this worker's breakers opens, or one of its manifests ejects an endpoint (to
  // tell the other workers), and what they call then.
  void on_breaker_opened(std::function<void(manifest::EndpointId)> hook) { breaker_opened_ = std::move(hook); }
  void open_breaker_from_peer(manifest::EndpointId id, resilience::TimePoint now) { breaker(id).open_from_peer(now); }
  // An ejection names its manifest by index and identity: a peer applies it only to the same
  // manifest (after a reload the index may hold another list, where `endpoint` is someone else).
  void on_ejected(std::function<void(std::uint32_t manifest, std::uint64_t identity, std::size_t endpoint)> hook) {
    ejected_ = std::move(hook);
  }
  void eject_from_peer(std::uint32_t manifest, std::uint64_t identity, std::size_t endpoint, resilience::TimePoint now);

  // For metrics (worker thread): breakers by EndpointId (null: never used), loads, manifest states.
  const std::vector<std::unique_ptr<resilience::CircuitBreaker>>& breakers() const noexcept { return breakers_; }
  const std::vector<EndpointLoad>& loads() const noexcept { return loads_; }
  const std::vector<std::unique_ptr<ManifestState>>& manifest_states() const noexcept { return manifests_; }

 private:
  resilience::ResiliencePolicy policy_;
  // By EndpointId: the breaker settings of the first manifest listing the endpoint (breakers are per
  // endpoint, shared by the manifests that list it).
  std::vector<resilience::CircuitBreakerConfig> breaker_configs_;
  std::vector<std::unique_ptr<resilience::CircuitBreaker>> breakers_;
  std::vector<std::unique_ptr<ManifestState>> manifests_;
  // The state each index had before its manifest changed: requests still pinned to the older
  // snapshot report there, rather than rebuilding (and so wiping) the current one at every turn.
  std::vector<std::unique_ptr<ManifestState>> previous_;
  std::vector<EndpointLoad> loads_;
  std::vector<bool> down_;  // by EndpointId: failing its active health check
  resilience::SplitMix64 random_{0x5eed};
  const snapshot::Snapshot* installed_ = nullptr;
  std::size_t rotation_ = 0;
  std::function<void(manifest::EndpointId)> breaker_opened_;
  std::function<void(std::uint32_t, std::uint64_t, std::size_t)> ejected_;
};

}  // namespace frontdoor::pipeline
