// A session's request after its head: the pipeline (limits, manifest, breaker, pick), a hold for a
// leaky-bucket limit, then the upstream exchange and how it ends (session.hpp).
#include "frontdoor/server/session.hpp"

#include <algorithm>
#include <cstdio>

#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// A request waiting this long gets a read armed on its client, to notice a hang-up (watch_client).
constexpr auto kWatchAfter = std::chrono::milliseconds(300);

}  // namespace

void Session::resume_pipeline(Waiter& waiter) {
  auto& self = *static_cast<Session*>(waiter.owner);
  if (self.phase_ == Phase::limiting) self.resume_after_hold();
}

void Session::resume_after_hold() {
  ctx_.now = worker_.now();
  if (ctx_.repin_snapshot) {
    // The manifest store published what this request waited for in a newer snapshot.
    ctx_.repin_snapshot = false;
    snapshot_ = worker_.snapshot();
    ctx_.snapshot = snapshot_.get();
  }
  run_pipeline();
}

void Session::run_pipeline() {
  const auto verdict = worker_.pipeline().on_request(ctx_);
  if (verdict == pipeline::Verdict::Suspend) {
    phase_ = Phase::limiting;
    const auto now = worker_.now();
    watch_at_ = std::min(watch_at_, now + kWatchAfter);
    if (ctx_.shape_until > now) {
      // A leaky-bucket limit admitted this request for later: the pipeline goes on (breaker, pick)
      // when its turn comes.
      const auto delay = ctx_.shape_until - now;
      set_deadline(delay + std::chrono::seconds(1));
      start_hold(delay);
      return;
    }
    // Woken by the limiter when its Redis fetch answers (or fails: it then decides without Redis,
    // as on_redis_failure says), or by the manifest store. The deadline is only a backstop, past
    // their own timeouts: the limiter's (Redis's connect and command timeouts), the store's (Redis's
    // command timeout, then PostgreSQL's connect and query timeouts, then a second to check the
    // document, or to give up on a PostgreSQL that never answers). A fixed one would cut a slow
    // Redis's wait short and answer 503 where the limit fails open; one equal to the store's own
    // answered 503 where the store was about to hand over the embedded manifests.
    const auto& c = snapshot_->config;
    set_deadline(ctx_.repin_snapshot ? c.redis.command_timeout + c.postgres.connect_timeout + c.postgres.query_timeout +
                                           std::chrono::seconds(2)
                                     : c.redis.connect_timeout + c.redis.command_timeout + std::chrono::seconds(1));
    return;
  }
  if (verdict == pipeline::Verdict::Continue) return start_upstream();
  if (ctx_.reply != Error::no_manifest) return reply(ctx_.reply, {}, !body_.done());
  char detail[300];
  const auto part = [](std::string_view s) { return static_cast<int>(std::min<std::size_t>(s.size(), 80)); };
  const auto n = std::snprintf(detail, sizeof detail, "project=%.*s module=%.*s environment=%.*s",
                               part(ctx_.project), ctx_.project.data(), part(ctx_.module), ctx_.module.data(),
                               part(ctx_.environment), ctx_.environment.data());
  reply(ctx_.reply, std::string_view(detail, static_cast<std::size_t>(std::max(n, 0))), !body_.done());
}

// The hold timer (leaky-bucket limits). A wait that was cancelled may still complete after a new
// one started: each wait is counted (the session is not freed before all complete) and carries its
// generation, so only the newest, uncancelled one acts.
void Session::start_hold(pipeline::Clock::duration delay) {
  const std::uint32_t generation = ++hold_generation_;
  ++holds_pending_;
  hold_timer_.expires_after(delay);
  hold_timer_.async_wait([this, generation](const error_code& ec) {
    --holds_pending_;
    if (phase_ == Phase::closed) return maybe_destroy();
    if (ec || generation != hold_generation_ || phase_ != Phase::limiting) return;  // cancelled or superseded
    resume_after_hold();
  });
}

void Session::cancel_hold() noexcept {
  ++hold_generation_;  // whatever wait is outstanding no longer acts, even if it already completed
  if (holds_pending_ > 0) hold_timer_.cancel();
}

void Session::start_upstream() {
  if (request_.expect_continue && !body_.done()) {
    // Answer the interim response ourselves (Expect is not forwarded): the body then flows at once.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    phase_ = Phase::continuing;
    if (write_client(kContinue, {}) == proxy::ClientWrite::done) start_exchange();
    return;  // pending: on_client_written starts it; failed: closed
  }
  start_exchange();
}

void Session::start_exchange() {
  phase_ = Phase::proxying;
  if (body_.done()) watch_at_ = std::min(watch_at_, ctx_.started + kWatchAfter);
  exchange_.start(ctx_, request_, body_, listener_->tls);
}

// A request whose body came after the head: once it is all upstream, a client that hangs up is
// noticed (and its upstream request cancelled) as for one without a body.
void Session::request_sent() noexcept {
  if (body_.done()) watch_at_ = std::min(watch_at_, worker_.coarse_now() + kWatchAfter);
}

void Session::exchange_done(const proxy::ExchangeEnd& end) {
  switch (end.kind) {
    case proxy::ExchangeEnd::Kind::complete:
      finish_request();
      if (end.close_client) return close_after_response();
      return next_request();
    case proxy::ExchangeEnd::Kind::failed: return reply(end.error, end.detail, end.close_client);
    case proxy::ExchangeEnd::Kind::cut:
      // The response is incomplete and its head is out: only a reset tells the client so when the
      // body is delimited by the close (and a reset is plainer than a short body in any framing).
      client_.abort();
      return close_now();
  }
}

void Session::exchange_released() noexcept {
  if (phase_ == Phase::closed) maybe_destroy();
}

}  // namespace frontdoor::server
