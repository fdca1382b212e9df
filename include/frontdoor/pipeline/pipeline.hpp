#pragma once
// Pipeline: a fixed sequence of concrete stages held by value. on_request runs them in order until
// one does not say Continue; on_complete runs every stage in reverse so each learns the outcome.
// No virtual call and no std::function per request.
#include <concepts>
#include <tuple>
#include <utility>

#include "frontdoor/pipeline/request_context.hpp"

namespace frontdoor::pipeline {

template <class S>
concept Stage = requires(S stage, RequestContext& ctx) {
  { stage.on_request(ctx) } -> std::same_as<Verdict>;
  { stage.on_complete(ctx) } -> std::same_as<void>;
};

template <Stage... Stages>
class Pipeline {
 public:
  explicit Pipeline(Stages... stages) : stages_(std::move(stages)...) {}

  Verdict on_request(RequestContext& ctx) {
    Verdict verdict = Verdict::Continue;
    std::apply([&](auto&... stage) { ((verdict = stage.on_request(ctx), verdict == Verdict::Continue) && ...); },
               stages_);
    return verdict;
  }

  void on_complete(RequestContext& ctx) { complete_reverse(ctx, std::index_sequence_for<Stages...>{}); }

  template <class S>
  S& stage() noexcept { return std::get<S>(stages_); }

 private:
  template <std::size_t... I>
  void complete_reverse(RequestContext& ctx, std::index_sequence<I...>) {
    constexpr std::size_t n = sizeof...(Stages);
    (std::get<n - 1 - I>(stages_).on_complete(ctx), ...);
  }

  std::tuple<Stages...> stages_;
};

}  // namespace frontdoor::pipeline
