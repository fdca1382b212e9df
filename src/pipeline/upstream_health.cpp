#include "frontdoor/pipeline/upstream_health.hpp"

namespace frontdoor::pipeline {

void UpstreamHealth::install(const Snapshot& snapshot) {
  if (installed_ == &snapshot) return;
  installed_ = &snapshot;
  policy_ = snapshot.resilience;
  if (breakers_.size() < snapshot.endpoint_count) breakers_.resize(snapshot.endpoint_count);
  manifests_.clear();
  for (const auto& m : snapshot.manifests.manifests())
    manifests_.push_back(std::make_unique<ManifestState>(m, policy_));
}

resilience::CircuitBreaker& UpstreamHealth::breaker(manifest::EndpointId id) {
  if (id >= breakers_.size()) breakers_.resize(id + 1);
  auto& b = breakers_[id];
  if (!b) b = std::make_unique<resilience::CircuitBreaker>(policy_.breaker);
  return *b;
}

UpstreamHealth::ManifestState& UpstreamHealth::state(const manifest::Manifest& m) {
  if (m.index >= manifests_.size()) manifests_.resize(m.index + 1);
  auto& s = manifests_[m.index];
  if (!s) s = std::make_unique<ManifestState>(m, policy_);
  return *s;
}

void UpstreamHealth::report(const manifest::Manifest& m, std::size_t index, Error outcome, unsigned status,
                            resilience::TimePoint now) noexcept {
  auto& b = breaker(m.endpoints[index].id);
  const FailureKind kind = error_info(outcome).failure_kind;
  const bool upstream_failure = kind == FailureKind::upstream_connect || kind == FailureKind::upstream_timeout ||
                                kind == FailureKind::upstream_protocol;
  if (upstream_failure) b.on_failure(now);
  else if (kind == FailureKind::client) b.on_cancelled();
  else b.on_success(now);
  // Outliers are endpoints that answer badly: timeouts, broken responses and their own 5xx. Refused
  // connections are the breaker's business (an ejection would keep a restarted endpoint out far longer).
  const bool bad_answer = kind == FailureKind::upstream_timeout || kind == FailureKind::upstream_protocol ||
                          (outcome == Error::ok && status >= 500);
  if (kind != FailureKind::client) state(m).outliers.on_result(index, bad_answer, now);
}

}  // namespace frontdoor::pipeline
