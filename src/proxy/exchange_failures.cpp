// UpstreamExchange when an attempt fails or a deadline passes: retries (RetryState decides, this
// carries it out), backoff, and what each phase does at its deadline (proxy/exchange.hpp). Off the
// path of a request that succeeds.
#include <algorithm>

#include "frontdoor/proxy/exchange.hpp"
#include "frontdoor/resilience/retry_budget.hpp"

namespace frontdoor::proxy {

using boost::system::error_code;
using stats::Counter;

// Asks RetryState what follows a failed attempt and carries it out: true when the request goes on
// (the exchange continues), false when the failure stands.
bool UpstreamExchange::try_again(AttemptFailure failure, Error error, unsigned status) {
  auto& health = host_.health();
  const auto now = ctx_->now = host_.now();
  const bool never_sent = failure == AttemptFailure::connect_failed || failure == AttemptFailure::connect_timeout;
  if (never_sent) {
    // The attempt is over whatever comes next: its endpoint learns it now, not again at the end.
    health.report(*ctx_->manifest, ctx_->endpoint_index, error, 0, resilience::Duration::zero(), now);
    ctx_->attempt_reported = true;
  }
  const AttemptFacts facts{upstream_reused_, request_bytes_sent_,
                           ctx_->response_started != pipeline::Clock::time_point{}, response_head_sent_};
  auto& state = health.state(*ctx_->manifest);
  const auto budget = static_cast<std::uint32_t>(std::min<std::uint64_t>(state.budget.available(now), UINT32_MAX));
  const RetryDecision decision = retry_.decide(failure, facts, policy(), ctx_->attempt, budget, health.random());
  switch (decision.action) {
    case RetryAction::give_up:
      if (decision.budget_refused) state.budget.count_refusal();
      return false;
    case RetryAction::same_endpoint_now:
      ++host_.counters()[Counter::upstream_stale_retries];
      release_upstream(false);
      force_new_connection_ = true;
      connect_upstream();
      return true;
    case RetryAction::other_endpoint_now:
    case RetryAction::other_endpoint_after: break;
  }
  if (!take_retry_slot()) return false;
  const auto failed = ctx_->endpoint_index;
  const auto failed_tried = ctx_->tried;
  const auto latency = ctx_->response_started == pipeline::Clock::time_point{}
                           ? resilience::Duration::zero()
                           : ctx_->response_started - ctx_->upstream_started;
  ctx_->tried.add(failed);
  ++ctx_->attempt;
  const bool picked = host_.picker().on_request(*ctx_) == pipeline::Verdict::Continue;
  if (!picked || !state.budget.try_acquire_retry(now)) {
    if (picked) health.breaker(ctx_->endpoint->id).on_cancelled();  // admitted, unused
    // Nowhere else to go: the failed attempt's answer stands.
    --ctx_->attempt;
    ctx_->tried = failed_tried;
    ctx_->endpoint = &ctx_->manifest->endpoints[failed];
    ctx_->endpoint_index = failed;
    ctx_->attempt_reported = never_sent;
    ctx_->reply = Error::ok;
    ctx_->retry_after_seconds = 0;
    return false;
  }
  if (!never_sent) health.report(*ctx_->manifest, failed, error, status, latency, now);
  ++host_.counters()[Counter::upstream_retries];
  release_upstream(false);  // an answer not read to its end: the connection cannot be reused
  ctx_->response_started = {};
  response_scanner_.reset();
  if (decision.action == RetryAction::other_endpoint_now) {
    connect_upstream();
  } else {
    phase_ = Phase::backing_off;
    client_.set_deadline(decision.delay + snapshot().config.timeouts.upstream_connect);
    start_backoff(decision.delay);
  }
  return true;
}

// Envoy's max_retries: requests of one cluster being retried at once, whole process.
bool UpstreamExchange::take_retry_slot() noexcept {
  if (ctx_->holds_retry_slot || ctx_->manifest->max_active_retries == 0) return true;
  auto* clusters = host_.clusters();
  if (clusters != nullptr && !clusters->try_add_retry(ctx_->manifest->index, ctx_->manifest->max_active_retries))
    return false;
  ctx_->holds_retry_slot = clusters != nullptr;
  return true;
}

// One timer (the retry backoff). A wait that was cancelled may still complete after a new one
// started: each wait is counted (the session is not freed before all complete) and carries its
// generation, so only the newest, uncancelled one acts.
void UpstreamExchange::start_backoff(resilience::Duration delay) {
  const std::uint32_t generation = ++timer_generation_;
  ++timers_pending_;
  backoff_timer_.expires_after(delay);
  backoff_timer_.async_wait([this, generation](const error_code& ec) {
    --timers_pending_;
    if (phase_ == Phase::idle) return client_.exchange_released();
    if (ec || generation != timer_generation_ || phase_ != Phase::backing_off) return;  // cancelled or superseded
    connect_upstream();
  });
}

void UpstreamExchange::cancel_timer() noexcept {
  ++timer_generation_;  // whatever wait is outstanding no longer acts, even if it already completed
  if (timers_pending_ > 0) backoff_timer_.cancel();
}

void UpstreamExchange::on_deadline(pipeline::Clock::time_point now, bool request_total_passed,
                                   bool client_write_pending) {
  const bool total = request_total_passed;
  switch (phase_) {
    case Phase::queued:
      leave_connection_queue();
      if (total) {
        // Never sent: nothing to hold against the endpoint (its probe slot, if any, is freed).
        host_.health().breaker(ctx_->endpoint->id).on_cancelled();
        ctx_->attempt_reported = true;
        return fail(Error::request_timeout);
      }
      ctx_->retry_after_seconds = 1;
      return fail(Error::upstream_overflow);
    case Phase::backing_off:
      // The next attempt's endpoint was picked but never contacted: it learns nothing of this.
      cancel_timer();
      host_.health().breaker(ctx_->endpoint->id).on_cancelled();
      ctx_->attempt_reported = true;
      return fail(total ? Error::request_timeout : Error::upstream_connect_timeout);
    case Phase::connecting:
      cancel_timer();
      release_upstream(false);
      if (!total && try_again(AttemptFailure::connect_timeout, Error::upstream_connect_timeout, 0)) return;
      return fail(total ? Error::request_timeout : Error::upstream_connect_timeout, ctx_->endpoint->name);
    case Phase::awaiting_response: {
      const auto per_try = policy().per_try_timeout;
      if (!total && per_try.count() > 0 && now >= ctx_->upstream_started + per_try &&
          try_again(AttemptFailure::per_try_timeout, Error::upstream_timeout, 0))
        return;
      return fail(total ? Error::request_timeout : Error::upstream_timeout, ctx_->endpoint->name);
    }
    case Phase::sending: {
      if (early_answer_held_ && !waiting_for_client_ && !client_write_pending && !total) {
        // It answered (a 2xx/3xx, held for the upload's end), then stopped taking the upload: its
        // answer goes to the client now, the connection closing after it. Not a timeout of the
        // endpoint's (it answered): that was a 504, and a failure for its breaker.
        upstream_early_event_ = true;
        return request_sent();
      }
      // Waiting on the client (its body, or it reading a reply) is the client's doing, not the upstream's.
      // request_total is the request's own bound, whoever was slow: its 504 first (as documented).
      const Error error = client_write_pending                 ? Error::client_timeout
                          : total                              ? Error::request_timeout
                          : waiting_for_client_                ? Error::client_timeout
                                                               : Error::upstream_timeout;
      if (client_write_pending) {  // a client that does not read cannot be told: cut
        ctx_->outcome = error;
        return cut();
      }
      if (total && waiting_for_client_) {
        // Its 504, but the body was still coming: the client's slowness is not held against the endpoint.
        host_.health().breaker(ctx_->endpoint->id).on_cancelled();
        ctx_->attempt_reported = true;
      }
      // A body too slow gets its 408 (the connection closes after it, lingering over the rest of the
      // body): it was reset without a word. The upstream's half-sent request is abandoned either way.
      return fail(error, error == Error::client_timeout ? std::string_view() : std::string_view(ctx_->endpoint->name));
    }
    case Phase::tunneling: return end_tunnel();  // idle for timeouts.tunnel_idle
    case Phase::relaying:
      ctx_->outcome = client_write_pending ? Error::client_timeout
                      : total              ? Error::request_timeout
                                           : Error::upstream_timeout;
      return cut();
    case Phase::idle: return;
  }
}

}  // namespace frontdoor::proxy
