#pragma once
// RetryState: the one place that decides what happens after an attempt fails — send it again now on
// the same endpoint, on another endpoint now, on another endpoint after a backoff, or give up (the
// failure stands). Envoy's RetryState is the model. Pure: no socket, no clock of its own; the
// exchange (proxy/exchange.hpp) reports each failure with the facts it knows and carries the
// decision out (a new connection, a pick, the budget's token).
//
// The rules:
// - A request that never left (no connection, or a write that failed before any byte was sent) may
//   go again whatever its method: nothing reached the application.
// - A pooled connection found closed before any response byte (the upstream's keep-alive timeout
//   raced our request) is retried once on a new connection to the same endpoint — if the request
//   has no body, and, once some of it was sent, only if it is idempotent (the upstream may have
//   acted on it).
// - Otherwise another endpoint is tried only for an idempotent, body-less request whose response
//   was not relayed yet, if retries.max_attempts and the retry budget allow.
// Idempotent: GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any request carrying an Idempotency-Key.
// Per request, owned by its exchange; worker thread only.
#include <cstdint>

#include "frontdoor/resilience/clock.hpp"
#include "frontdoor/resilience/policy.hpp"

namespace frontdoor::proxy {

enum class AttemptFailure : std::uint8_t {
  connect_failed,     // refused / unreachable: the request never left
  connect_timeout,    // likewise
  closed,             // the connection closed or reset before a complete response head
  per_try_timeout,    // no response head within retries.per_try_timeout
  retryable_status,   // a response head whose status is in retries.on_statuses
};

// What the exchange knows of the failed attempt.
struct AttemptFacts {
  bool reused_connection = false;   // a pooled connection, not one opened for this attempt
  bool request_bytes_sent = false;  // some byte of the request was written to the connection
  bool response_started = false;    // some byte of a response arrived
  bool response_relayed = false;    // the response head went to the client: nothing can be redone
};

enum class RetryAction : std::uint8_t {
  give_up,                  // the failure is the request's outcome
  same_endpoint_now,        // a new connection to the same endpoint, at once; not an attempt
  other_endpoint_now,       // the next attempt, on another endpoint, at once
  other_endpoint_after,     // the next attempt, on another endpoint, after `delay`
};

struct RetryDecision {
  RetryAction action = RetryAction::give_up;
  resilience::Duration delay{};
  bool budget_refused = false;  // give_up only because the retry budget had nothing left
};

class RetryState {
 public:
  // A new request: whether it may be sent twice (method or Idempotency-Key), and whether it has a body.
  void start(bool idempotent, bool has_body) noexcept {
    idempotent_ = idempotent;
    has_body_ = has_body;
    stale_retried_ = false;
  }

  // `attempt`: 0 for the first try. `budget_available`: retries the manifest's retry budget would
  // admit now. `random`: a fresh random number (the backoff's jitter).
  RetryDecision decide(AttemptFailure failure, const AttemptFacts& facts, const resilience::ResiliencePolicy& policy,
                       std::uint32_t attempt, std::uint32_t budget_available, std::uint64_t random) noexcept;

  bool idempotent() const noexcept { return idempotent_; }
  // A pooled connection found closed when this request is sent on it can be tried again on a new
  // one (decide()'s stale retry): no body, idempotent, not retried so already.
  bool stale_retry_available() const noexcept { return idempotent_ && !has_body_ && !stale_retried_; }

 private:
  bool idempotent_ = false;
  bool has_body_ = false;
  bool stale_retried_ = false;
};

}  // namespace frontdoor::proxy
