// RetryState decides alone, without sockets: what a failed attempt leads to for each method, body,
// connection history and policy.
#include "frontdoor/proxy/retry_state.hpp"

#include <gtest/gtest.h>

namespace frontdoor::proxy {
namespace {

using namespace std::chrono_literals;

resilience::ResiliencePolicy policy_with(std::uint32_t max_attempts = 3, bool retry_on_reset = false) {
  resilience::ResiliencePolicy p;
  p.max_attempts = max_attempts;
  p.retry_on_reset = retry_on_reset;
  p.backoff_base = 25ms;
  p.backoff_max = 250ms;
  return p;
}

struct Case {
  bool idempotent = true;
  bool has_body = false;
};

RetryDecision decide(RetryState& state, AttemptFailure failure, AttemptFacts facts,
                     const resilience::ResiliencePolicy& policy, std::uint32_t attempt = 0,
                     std::uint32_t budget = 10) {
  return state.decide(failure, facts, policy, attempt, budget, 12345);
}

TEST(RetryState, ConnectFailureGoesElsewhereWhateverTheMethodOrBody) {
  for (const Case c : {Case{true, false}, Case{false, false}, Case{false, true}}) {
    RetryState state;
    state.start(c.idempotent, c.has_body);
    EXPECT_EQ(decide(state, AttemptFailure::connect_failed, {}, policy_with()).action, RetryAction::other_endpoint_now);
    EXPECT_EQ(decide(state, AttemptFailure::connect_timeout, {}, policy_with()).action,
              RetryAction::other_endpoint_now);
  }
}

TEST(RetryState, ConnectFailureStopsAtMaxAttemptsOrAnEmptyBudget) {
  RetryState state;
  state.start(true, false);
  EXPECT_EQ(decide(state, AttemptFailure::connect_failed, {}, policy_with(3), 2).action, RetryAction::give_up);
  EXPECT_EQ(decide(state, AttemptFailure::connect_failed, {}, policy_with(1), 0).action, RetryAction::give_up);
  EXPECT_EQ(decide(state, AttemptFailure::connect_failed, {}, policy_with(3), 0, 0).action, RetryAction::give_up);
}

// Only a retry the rules allow is "refused by the budget" (fd_retry_budget_total{result="refused"}).
TEST(RetryState, SaysWhenOnlyTheBudgetRefusedTheRetry) {
  RetryState state;
  state.start(true, false);
  EXPECT_TRUE(decide(state, AttemptFailure::connect_failed, {}, policy_with(3), 0, 0).budget_refused);
  EXPECT_TRUE(decide(state, AttemptFailure::retryable_status, {}, policy_with(3), 0, 0).budget_refused);
  EXPECT_FALSE(decide(state, AttemptFailure::retryable_status, {}, policy_with(3), 2, 0).budget_refused);  // last try
  EXPECT_FALSE(decide(state, AttemptFailure::retryable_status, {}, policy_with(3), 0, 5).budget_refused);
  RetryState post;
  post.start(false, true);
  EXPECT_FALSE(decide(post, AttemptFailure::retryable_status, {}, policy_with(3), 0, 0).budget_refused);  // never retried
}

TEST(RetryState, StalePooledConnectionIsRetriedOnceOnTheSameEndpoint) {
  RetryState state;
  state.start(true, false);
  const AttemptFacts stale{.reused_connection = true, .request_bytes_sent = true};
  EXPECT_EQ(decide(state, AttemptFailure::closed, stale, policy_with()).action, RetryAction::same_endpoint_now);
  // Once: the second close is a real failure (retry_on_reset is off).
  EXPECT_EQ(decide(state, AttemptFailure::closed, stale, policy_with()).action, RetryAction::give_up);
}

TEST(RetryState, BodylessPostOnAStaleConnectionIsNotReplayedOnceSent) {
  // A POST with Content-Length: 0 may have been acted on: the upstream closed after reading it.
  RetryState state;
  state.start(/*idempotent=*/false, /*has_body=*/false);
  const AttemptFacts sent{.reused_connection = true, .request_bytes_sent = true};
  EXPECT_EQ(decide(state, AttemptFailure::closed, sent, policy_with(3, true)).action, RetryAction::give_up);
  // ...but a write that failed before any byte left may go again.
  RetryState fresh;
  fresh.start(false, false);
  const AttemptFacts unsent{.reused_connection = true, .request_bytes_sent = false};
  EXPECT_EQ(decide(fresh, AttemptFailure::closed, unsent, policy_with()).action, RetryAction::same_endpoint_now);
}

TEST(RetryState, IdempotencyKeyMakesAPostRetryable) {
  RetryState state;
  state.start(/*idempotent (Idempotency-Key)=*/true, false);
  const AttemptFacts sent{.reused_connection = true, .request_bytes_sent = true};
  EXPECT_EQ(decide(state, AttemptFailure::closed, sent, policy_with()).action, RetryAction::same_endpoint_now);
}

TEST(RetryState, RequestWithABodyIsNeverSentTwiceOnceItLeft) {
  RetryState state;
  state.start(true, /*has_body=*/true);
  const AttemptFacts stale{.reused_connection = true, .request_bytes_sent = true};
  EXPECT_EQ(decide(state, AttemptFailure::closed, stale, policy_with(3, true)).action, RetryAction::give_up);
  EXPECT_EQ(decide(state, AttemptFailure::retryable_status, {.response_started = true}, policy_with()).action,
            RetryAction::give_up);
  EXPECT_EQ(decide(state, AttemptFailure::per_try_timeout, {.request_bytes_sent = true}, policy_with()).action,
            RetryAction::give_up);
}

TEST(RetryState, ResetOnANewConnectionNeedsRetryOnReset) {
  RetryState state;
  state.start(true, false);
  const AttemptFacts fresh_sent{.reused_connection = false, .request_bytes_sent = true};
  EXPECT_EQ(decide(state, AttemptFailure::closed, fresh_sent, policy_with(3, false)).action, RetryAction::give_up);
  const auto d = decide(state, AttemptFailure::closed, fresh_sent, policy_with(3, true));
  EXPECT_EQ(d.action, RetryAction::other_endpoint_after);
  EXPECT_GE(d.delay, 0ms);
  EXPECT_LE(d.delay, 25ms);  // attempt 0: full jitter under the base
}

TEST(RetryState, BadAnswersGoElsewhereAfterABackoffForIdempotentRequestsOnly) {
  for (const auto failure : {AttemptFailure::retryable_status, AttemptFailure::per_try_timeout}) {
    RetryState get;
    get.start(true, false);
    const auto d = decide(get, failure, {.request_bytes_sent = true, .response_started = true}, policy_with(), 1);
    EXPECT_EQ(d.action, RetryAction::other_endpoint_after);
    EXPECT_LE(d.delay, 50ms);  // attempt 1: under base x 2
    RetryState post;
    post.start(false, false);
    EXPECT_EQ(decide(post, failure, {.request_bytes_sent = true}, policy_with()).action, RetryAction::give_up);
  }
}

TEST(RetryState, NothingIsRetriedOnceTheResponseWasRelayed) {
  RetryState state;
  state.start(true, false);
  const AttemptFacts relayed{.reused_connection = true, .request_bytes_sent = true, .response_started = true,
                             .response_relayed = true};
  for (const auto failure : {AttemptFailure::closed, AttemptFailure::per_try_timeout, AttemptFailure::retryable_status})
    EXPECT_EQ(decide(state, failure, relayed, policy_with(3, true)).action, RetryAction::give_up);
}

TEST(RetryState, BudgetAndAttemptsBoundBadAnswerRetries) {
  RetryState state;
  state.start(true, false);
  const AttemptFacts facts{.request_bytes_sent = true, .response_started = true};
  EXPECT_EQ(decide(state, AttemptFailure::retryable_status, facts, policy_with(3), 2).action, RetryAction::give_up);
  EXPECT_EQ(decide(state, AttemptFailure::retryable_status, facts, policy_with(3), 0, 0).action, RetryAction::give_up);
}

TEST(RetryState, BackoffNeverExceedsItsCeiling) {
  RetryState state;
  state.start(true, false);
  const auto policy = policy_with(100);
  for (std::uint32_t attempt = 0; attempt < 20; ++attempt) {
    const auto d = state.decide(AttemptFailure::retryable_status, {.response_started = true}, policy, attempt, 10,
                                attempt * 7919u + 1);
    ASSERT_EQ(d.action, RetryAction::other_endpoint_after);
    EXPECT_LE(d.delay, 250ms);
  }
}

}  // namespace
}  // namespace frontdoor::proxy
