#pragma once
// The stages of the request pipeline, in order: RateLimit -> Manifest -> Breaker -> Pick.
// (The proxy step that follows is the session's own asynchronous work.)
// Each stage is owned by one worker and used from its thread only.
#include <cstdint>
#include <vector>

#include "frontdoor/core/snapshot.hpp"
#include "frontdoor/pipeline/pipeline.hpp"

namespace frontdoor::pipeline {

// Rate limiting (issue #4): no limit is configurable yet, so every request continues.
struct RateLimitStage {
  Verdict on_request(RequestContext&) noexcept { return Verdict::Continue; }
  void on_complete(RequestContext&) noexcept {}
};

// Resolves the request's manifest from the path (/{project}/{module}/...) and the environment header.
struct ManifestStage {
  Verdict on_request(RequestContext& ctx) noexcept;
  void on_complete(RequestContext&) noexcept {}
};

// Circuit breaking per endpoint (issue #4): every endpoint is admitted for now.
struct BreakerStage {
  Verdict on_request(RequestContext&) noexcept { return Verdict::Continue; }
  void on_complete(RequestContext&) noexcept {}
};

// Chooses the endpoint. Round robin state is per worker, per manifest (indexed by Manifest::index).
class PickStage {
 public:
  Verdict on_request(RequestContext& ctx) noexcept;
  void on_complete(RequestContext&) noexcept {}
  // A new snapshot may have more manifests; called on the worker thread when it is installed.
  void resize(std::size_t manifests) { cursor_.assign(manifests, 0); }

 private:
  std::vector<std::uint32_t> cursor_;
};

using RequestPipeline = Pipeline<RateLimitStage, ManifestStage, BreakerStage, PickStage>;

}  // namespace frontdoor::pipeline
