#include "frontdoor/pipeline/stages.hpp"

#include <cstdio>
#include <cstring>

#include "frontdoor/resilience/hash.hpp"

namespace frontdoor::pipeline {
namespace {

std::string_view header_value(const RequestContext& ctx, std::string_view name) noexcept {
  for (const http::Header& h : *ctx.request->headers)
    if (h.kind == http::HeaderKind::other && http::iequals(h.name, name) && !h.value.empty()) return h.value;
  return {};
}

std::string_view environment_of(const RequestContext& ctx) noexcept {
  const auto value = header_value(ctx, ctx.snapshot->config.routing.environment_header);
  return value.empty() ? ctx.default_environment : value;
}

// Appends to the context's response header lines; silently stops when full (never a partial line).
void append_header(RequestContext& ctx, std::string_view line) noexcept {
  if (ctx.response_headers_size + line.size() > ctx.response_headers.size()) return;
  std::memcpy(ctx.response_headers.data() + ctx.response_headers_size, line.data(), line.size());
  ctx.response_headers_size = static_cast<std::uint16_t>(ctx.response_headers_size + line.size());
}

std::uint64_t ceil_seconds(resilience::Duration d) noexcept {
  return static_cast<std::uint64_t>(std::chrono::ceil<std::chrono::seconds>(d).count());
}

}  // namespace

Verdict RateLimitStage::on_request(RequestContext& ctx) noexcept {
  const auto& limits = ctx.snapshot->rate_limits;
  if (limits.empty() || table_ == nullptr) return Verdict::Continue;
  const CompiledRateLimit* tightest = nullptr;
  resilience::LimitDecision tightest_decision;
  bool refused = false;
  for (const auto& limit : limits) {
    std::uint64_t key = 0;
    switch (limit.key) {
      case CompiledRateLimit::Key::client_ip: key = resilience::hash64(ctx.client_ip); break;
      case CompiledRateLimit::Key::header: {
        const auto value = header_value(ctx, limit.header);
        if (value.empty()) continue;  // not identified by this limit's key: not limited by it
        key = resilience::hash64(value);
        break;
      }
      case CompiledRateLimit::Key::path:
      case CompiledRateLimit::Key::manifest: {
        const auto route = manifest::split_route(ctx.request->target);
        key = resilience::hash_combine(resilience::hash64(route.project), resilience::hash64(route.module));
        if (limit.key == CompiledRateLimit::Key::manifest)
          key = resilience::hash_combine(key, resilience::hash64(environment_of(ctx)));
        break;
      }
    }
    const auto decision = table_->acquire(resilience::hash_combine(limit.id, key), limit.policy, ctx.now);
    if (!decision.allowed) {
      tightest = &limit;
      tightest_decision = decision;
      refused = true;
      break;
    }
    if (tightest == nullptr || decision.remaining < tightest_decision.remaining) {
      tightest = &limit;
      tightest_decision = decision;
    }
  }
  if (tightest == nullptr) return Verdict::Continue;
  char line[256];
  // RateLimit-Policy: every limit; RateLimit: the state of the one closest to refusing.
  std::size_t n = 0;
  append_header(ctx, "RateLimit-Policy: ");
  for (std::size_t i = 0; i < limits.size(); ++i) {
    n = static_cast<std::size_t>(std::snprintf(line, sizeof line, "%s\"%s\";q=%u;w=%u", i ? ", " : "",
                                               limits[i].name.c_str(), limits[i].quota, limits[i].window_seconds));
    append_header(ctx, std::string_view(line, std::min(n, sizeof line - 1)));
  }
  append_header(ctx, "\r\n");
  n = static_cast<std::size_t>(std::snprintf(line, sizeof line, "RateLimit: \"%s\";r=%llu;t=%llu\r\n",
                                             tightest->name.c_str(),
                                             static_cast<unsigned long long>(tightest_decision.remaining),
                                             static_cast<unsigned long long>(ceil_seconds(tightest_decision.reset_after))));
  append_header(ctx, std::string_view(line, std::min(n, sizeof line - 1)));
  if (!refused) return Verdict::Continue;
  const auto wait = tightest_decision.retry_after == resilience::Duration::max()
                        ? std::uint64_t{tightest->window_seconds}
                        : ceil_seconds(tightest_decision.retry_after);
  ctx.retry_after_seconds = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, wait));
  ctx.reply = Error::rate_limited;
  return Verdict::Reply;
}

Verdict ManifestStage::on_request(RequestContext& ctx) noexcept {
  const auto route = manifest::split_route(ctx.request->target);
  ctx.project = route.project;
  ctx.module = route.module;
  ctx.environment = environment_of(ctx);
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
