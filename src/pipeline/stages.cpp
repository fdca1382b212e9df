#include "frontdoor/pipeline/stages.hpp"

namespace frontdoor::pipeline {

Verdict ManifestStage::on_request(RequestContext& ctx) noexcept {
  const auto route = manifest::split_route(ctx.request->target);
  ctx.project = route.project;
  ctx.module = route.module;
  ctx.environment = ctx.default_environment;
  const auto& env_header = ctx.snapshot->config.routing.environment_header;
  for (const http::Header& h : *ctx.request->headers) {
    if (h.kind == http::HeaderKind::other && http::iequals(h.name, env_header) && !h.value.empty()) {
      ctx.environment = h.value;
      break;
    }
  }
  ctx.manifest = ctx.snapshot->manifests.find(ctx.project, ctx.module, ctx.environment);
  if (ctx.manifest == nullptr) {
    ctx.reply = Error::no_manifest;
    return Verdict::Reply;
  }
  return Verdict::Continue;
}

void BreakerStage::on_complete(RequestContext& ctx) noexcept {
  if (ctx.endpoint == nullptr || ctx.manifest == nullptr || ctx.attempt_reported) return;
  health_->report(*ctx.manifest, ctx.endpoint_index, ctx.outcome, ctx.status, ctx.now);
}

Verdict PickStage::on_request(RequestContext& ctx) noexcept {
  const auto& endpoints = ctx.manifest->endpoints;
  auto& state = health_->state(*ctx.manifest);
  const auto now = ctx.now;
  if (ctx.attempt == 0) state.budget.on_request(now);
  auto untried = [&](std::size_t i) { return i >= 64 || (ctx.tried & (std::uint64_t{1} << i)) == 0; };
  auto admits = [&](std::size_t i) { return health_->breaker(endpoints[i].id).allow(now); };
  std::size_t i = state.picker.pick([&](std::size_t k) {
    return untried(k) && !state.outliers.ejected(k, now) && admits(k);
  });
  if (i == resilience::kNoEndpoint) i = state.picker.pick([&](std::size_t k) { return untried(k) && admits(k); });
  if (i == resilience::kNoEndpoint) {
    // Retry-After: when the first open breaker will let a probe through.
    auto soonest = resilience::TimePoint::max();
    for (const auto& e : endpoints) {
      const auto at = health_->breaker(e.id).half_open_at();
      if (at != resilience::TimePoint{} && at < soonest) soonest = at;
    }
    const auto wait = soonest == resilience::TimePoint::max() ? std::chrono::seconds(1)
                                                              : std::chrono::ceil<std::chrono::seconds>(soonest - now);
    ctx.retry_after_seconds = static_cast<std::uint32_t>(std::max<std::int64_t>(1, wait.count()));
    ctx.reply = Error::no_healthy_upstream;
    return Verdict::Reply;
  }
  ctx.endpoint = &endpoints[i];
  ctx.endpoint_index = static_cast<std::uint32_t>(i);
  ctx.attempt_reported = false;
  return Verdict::Continue;
}

}  // namespace frontdoor::pipeline
