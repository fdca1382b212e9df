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

  // Runs the stages from ctx.stage_next (0 for a new request). A stage that says Suspend is where the
  // request resumes: calling on_request again continues with that stage, not from the first.
  Verdict on_request(RequestContext& ctx) { return run_from(ctx, std::index_sequence_for<Stages...>{}); }

  void on_complete(RequestContext& ctx) { complete_reverse(ctx, std::index_sequence_for<Stages...>{}); }

  template <class S>
  S& stage() noexcept { return std::get<S>(stages_); }

 private:
  template <std::size_t... I>
  Verdict run_from(RequestContext& ctx, std::index_sequence<I...>) {
    Verdict verdict = Verdict::Continue;
    const auto run = [&](auto& stage, std::uint8_t index) {
      if (index < ctx.stage_next) return true;
      verdict = stage.on_request(ctx);
      if (verdict == Verdict::Suspend) ctx.stage_next = index;
      return verdict == Verdict::Continue;
    };
    (run(std::get<I>(stages_), static_cast<std::uint8_t>(I)) && ...);
    return verdict;
  }

  template <std::size_t... I>
  void complete_reverse(RequestContext& ctx, std::index_sequence<I...>) {
    constexpr std::size_t n = sizeof...(Stages);
    (std::get<n - 1 - I>(stages_).on_complete(ctx), ...);
  }

  std::tuple<Stages...> stages_;
};

}  // namespace frontdoor::pipeline
