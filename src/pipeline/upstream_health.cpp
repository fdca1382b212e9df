#include "frontdoor/pipeline/upstream_health.hpp"

#include "frontdoor/resilience/hash.hpp"

#include <spdlog/spdlog.h>

namespace frontdoor::pipeline {
namespace {

std::vector<std::uint32_t> weights_of(const manifest::Manifest& m) {
  std::vector<std::uint32_t> w;
  for (const auto& e : m.endpoints) w.push_back(e.weight);
  return w;
}

}  // namespace

UpstreamHealth::ManifestState::ManifestState(const manifest::Manifest& m, const resilience::ResiliencePolicy& policy,
                                             std::size_t rotation)
    : round_robin(m.endpoints.size(), rotation),
      weighted(weights_of(m)),
      least_outstanding(weights_of(m)),
      two_choices(m.endpoints.size()),
      outliers(policy.outliers, m.endpoints.size()),
      budget(policy.retry_budget),
      identity(m.identity) {
  if (m.balancing == manifest::Balancing::consistent_hash) {
    // Identities, not indexes: an endpoint leaving moves only its own keys.
    std::vector<resilience::RingEndpoint> ring_endpoints;
    for (const auto& e : m.endpoints) ring_endpoints.push_back({resilience::hash64(e.name), e.weight});
    ring = std::make_unique<resilience::ConsistentHashRing>(ring_endpoints);
  }
}

void UpstreamHealth::set_checked_healthy(manifest::EndpointId id, bool healthy) {
  if (id >= down_.size()) down_.resize(id + 1, false);
  down_[id] = !healthy;
}

UpstreamHealth::EndpointLoad& UpstreamHealth::load(manifest::EndpointId id) {
  if (id >= loads_.size()) loads_.resize(id + 1);
  return loads_[id];
}

void UpstreamHealth::forget(manifest::EndpointId id) noexcept {
  if (id < breakers_.size()) breakers_[id].reset();
  if (id < loads_.size()) loads_[id] = EndpointLoad{};
  if (id < down_.size()) down_[id] = false;
}

void UpstreamHealth::install(const snapshot::Snapshot& snapshot) {
  if (installed_ == &snapshot) return;
  installed_ = &snapshot;
  policy_ = snapshot.resilience;
  if (breakers_.size() < snapshot.endpoint_count) breakers_.resize(snapshot.endpoint_count);
  breaker_configs_.assign(snapshot.endpoint_count, policy_.breaker);
  std::vector<bool> configured(snapshot.endpoint_count, false);
  // State carries over for manifests that stay as they were (a reload, the manifest store's
  // publishes); the rest is rebuilt when first used.
  const auto& manifests = snapshot.manifests.manifests();
  if (manifests_.size() > manifests.size()) manifests_.resize(manifests.size());
  if (previous_.size() < manifests_.size()) previous_.resize(manifests_.size());
  for (const auto& m : manifests) {
    if (m.index < manifests_.size() && manifests_[m.index] && manifests_[m.index]->identity != m.identity)
      previous_[m.index] = std::move(manifests_[m.index]);
    for (const auto& e : m.endpoints)
      if (e.id < configured.size() && !configured[e.id]) {
        configured[e.id] = true;
        breaker_configs_[e.id] = policy(m).breaker;
      }
  }
  // Breakers already made take the new settings too (a reload during an incident must be able to
  // lengthen, shorten or turn off what is cutting an endpoint off).
  for (std::size_t id = 0; id < breakers_.size() && id < breaker_configs_.size(); ++id)
    if (breakers_[id]) breakers_[id]->reconfigure(breaker_configs_[id]);
}

void UpstreamHealth::eject_from_peer(std::uint32_t manifest, std::uint64_t identity, std::size_t endpoint,
                                     resilience::TimePoint now) {
  if (installed_ == nullptr) return;
  const auto& manifests = installed_->manifests.manifests();
  if (manifest >= manifests.size() || manifests[manifest].identity != identity ||
      endpoint >= manifests[manifest].endpoints.size())
    return;  // another manifest's list now: its index there is another endpoint
  state(manifests[manifest]).outliers.eject(endpoint, now);  // within max_ejection_percent here too
}

resilience::CircuitBreaker& UpstreamHealth::breaker(manifest::EndpointId id) {
  if (id >= breakers_.size()) breakers_.resize(id + 1);
  auto& b = breakers_[id];
  if (!b) b = std::make_unique<resilience::CircuitBreaker>(id < breaker_configs_.size() ? breaker_configs_[id]
                                                                                     : policy_.breaker);
  return *b;
}

UpstreamHealth::ManifestState& UpstreamHealth::state(const manifest::Manifest& m) {
  if (m.index >= manifests_.size()) manifests_.resize(m.index + 1);
  if (m.index >= previous_.size()) previous_.resize(m.index + 1);
  auto& current = manifests_[m.index];
  if (current && current->identity == m.identity) return *current;
  auto& previous = previous_[m.index];
  if (previous && previous->identity == m.identity) return *previous;
  // A state for this manifest, so a picker never answers an index beyond its endpoints: the current
  // one when `m` is the installed snapshot's (the older one kept for requests still on it), else
  // one for a request on an older snapshot, which leaves the current state alone.
  const bool is_installed = installed_ != nullptr && m.index < installed_->manifests.manifests().size() &&
                            &installed_->manifests.manifests()[m.index] == &m;
  auto& slot = is_installed ? current : previous;
  if (is_installed && current) previous = std::move(current);  // install() may have moved it there already
  slot = std::make_unique<ManifestState>(m, policy(m), rotation_);
  return *slot;
}

void UpstreamHealth::report(const manifest::Manifest& m, std::size_t index, Error outcome, unsigned status,
                            resilience::Duration latency, resilience::TimePoint now) noexcept {
  auto& b = breaker(m.endpoints[index].id);
  if (latency.count() > 0) load(m.endpoints[index].id).latency.update(latency, now);
  const FailureKind kind = error_info(outcome).failure_kind;
  const auto& p = policy(m);
  const bool breaker_failure = (kind == FailureKind::upstream_connect && p.breaker_counts_connect) ||
                               (kind == FailureKind::upstream_timeout && p.breaker_counts_timeout) ||
                               (kind == FailureKind::upstream_protocol && p.breaker_counts_bad_response) ||
                               (outcome == Error::ok && status >= 500 && p.breaker_counts_5xx);
  if (breaker_failure) {
    const auto opened = b.counters().opened;
    b.on_failure(now);
    // Workers report, all act: every worker's breaker for this endpoint opens with it.
    if (b.counters().opened != opened) {
      // Said by the worker that saw it open (the others follow, quietly): at most once per
      // open_duration per endpoint, and the 503s and failovers that follow have a reason in the log.
      spdlog::warn("endpoint {}: circuit breaker opened ({} of {}/{}/{}): no requests to it for {} ms, then a probe",
                   m.endpoints[index].name,
                   outcome == Error::ok ? "status " + std::to_string(status) : std::string(error_info(outcome).label),
                   m.project, m.module, m.environment,
                   std::chrono::duration_cast<std::chrono::milliseconds>(p.breaker.open_duration).count());
      if (breaker_opened_) breaker_opened_(m.endpoints[index].id);
    }
  }
  else if (kind == FailureKind::client || kind == FailureKind::not_sent) b.on_cancelled();
  else b.on_success(now);
  // Outliers are endpoints that answer badly: timeouts, broken responses and their own 5xx. Refused
  // connections are the breaker's business (an ejection would keep a restarted endpoint out far longer).
  const bool bad_answer = kind == FailureKind::upstream_timeout || kind == FailureKind::upstream_protocol ||
                          (outcome == Error::ok && status >= 500);
  if (kind != FailureKind::client && kind != FailureKind::not_sent) {
    auto& outliers = state(m).outliers;
    const auto ejections = outliers.counters().ejections;
    outliers.on_result(index, bad_answer, now);
    if (outliers.counters().ejections != ejections) {
      spdlog::warn("endpoint {}: ejected from {}/{}/{} as an outlier (its answers: timeouts, broken responses or 5xx)",
                   m.endpoints[index].name, m.project, m.module, m.environment);
      if (ejected_) ejected_(m.index, m.identity, index);
    }
  }
}

}  // namespace frontdoor::pipeline
