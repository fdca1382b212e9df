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

Verdict PickStage::on_request(RequestContext& ctx) noexcept {
  const auto& endpoints = ctx.manifest->endpoints;
  if (ctx.manifest->index >= cursor_.size()) cursor_.resize(ctx.manifest->index + 1, 0);  // cold path
  std::uint32_t& cursor = cursor_[ctx.manifest->index];
  ctx.endpoint = &endpoints[cursor % endpoints.size()];
  ++cursor;
  return Verdict::Continue;
}

}  // namespace frontdoor::pipeline
