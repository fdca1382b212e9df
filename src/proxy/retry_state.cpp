#include "frontdoor/proxy/retry_state.hpp"

#include "frontdoor/resilience/retry_budget.hpp"

namespace frontdoor::proxy {

RetryDecision RetryState::decide(AttemptFailure failure, const AttemptFacts& facts,
                                 const resilience::ResiliencePolicy& policy, std::uint32_t attempt,
                                 std::uint32_t budget_available, std::uint64_t random) noexcept {
  if (facts.response_relayed) return {};
  const bool attempts_left = attempt + 1 < policy.max_attempts;
  // A retry the rules allow and the budget does not: said, so the refusal is counted.
  const RetryDecision budget_refused{RetryAction::give_up, {}, true};
  switch (failure) {
    case AttemptFailure::connect_failed:
    case AttemptFailure::connect_timeout:
      // Nothing was sent: any method may go elsewhere, with or without a body (none of it was read yet).
      if (!attempts_left) return {};
      return budget_available > 0 ? RetryDecision{RetryAction::other_endpoint_now} : budget_refused;
    case AttemptFailure::closed:
      if (!facts.response_started && !has_body_ && !stale_retried_ &&
          (facts.reused_connection || !facts.request_bytes_sent) && (idempotent_ || !facts.request_bytes_sent)) {
        stale_retried_ = true;
        return {RetryAction::same_endpoint_now};
      }
      if (!policy.retry_on_reset) return {};
      break;
    case AttemptFailure::per_try_timeout:
    case AttemptFailure::retryable_status: break;
  }
  if (has_body_ || !idempotent_ || !attempts_left) return {};
  if (budget_available == 0) return budget_refused;
  return {RetryAction::other_endpoint_after,
          resilience::backoff_delay(attempt, policy.backoff_base, policy.backoff_max, random)};
}

}  // namespace frontdoor::proxy
