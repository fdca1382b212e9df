#include "frontdoor/server/session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <spdlog/spdlog.h>

#include "frontdoor/resilience/clock.hpp"
#include "frontdoor/resilience/retry_budget.hpp"
#include "frontdoor/server/worker.hpp"
#include "frontdoor/upstream/connection.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;
using http::BodyFraming;
using proxy::ClientFraming;

namespace {

constexpr std::uint32_t kLingerBytes = 1 << 20;  // discarded after a closing reply, at most
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::uint8_t kMaxRecursion = 8;  // pipelined requests handled inline before yielding

// Non-blocking gather write; `n` is what the kernel took.
std::size_t try_write(asio::ip::tcp::socket& socket, std::string_view head, std::string_view body, error_code& ec) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  return socket.write_some(buffers, ec);
}

}  // namespace

Session::Session(Worker& worker) : worker_(worker), client_(worker.io()), backoff_timer_(worker.io()) {
  ctx_.lease_waiter.owner = this;
  ctx_.lease_waiter.wake = &Session::resume_pipeline;
  connection_waiter_.owner = this;
  connection_waiter_.wake = &Session::resume_connect;
  log_method_.reserve(16);
  log_target_.reserve(256);
}

void Session::start(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& peer, const ListenerInfo& listener) {
  client_.reset(std::move(socket), listener.tls_context.get());
  listener_ = &listener;
  snapshot_ = worker_.snapshot();
  buffer_ = worker_.take_client_buffer();
  capacity_ = worker_.client_buffer_bytes_;
  begin_ = end_ = 0;
  request_.headers = &request_headers_;
  response_.headers = &response_headers_;
  const auto max_headers = snapshot_->config.limits.max_header_count;
  if (request_headers_.capacity() < max_headers) request_headers_.reserve(max_headers);
  if (response_headers_.capacity() < max_headers) response_headers_.reserve(max_headers);
  const std::string ip = peer.address().to_string();  // once per connection
  client_ip_size_ = static_cast<std::uint8_t>(std::min(ip.size(), client_ip_.size()));
  std::memcpy(client_ip_.data(), ip.data(), client_ip_size_);
  ctx_.client_ip = std::string_view(client_ip_.data(), client_ip_size_);
  ctx_.default_environment = listener.default_environment;
  request_deadline_ = pipeline::Clock::time_point::max();
  head_started_ = false;
  phase_ = Phase::reading_head;
  spill_.clear();
  client_write_pending_ = client_read_pending_ = false;
  recursion_ = 0;
  if (client_.is_tls()) {
    // The handshake counts against the header timeout, like the head it precedes.
    set_deadline(snapshot_->config.timeouts.client_header);
    client_read_pending_ = true;
    client_.async_handshake([this](const error_code& ec) {
      client_read_pending_ = false;
      if (phase_ == Phase::closed) return maybe_destroy();
      if (ec) {
        spdlog::debug("TLS handshake from {}: {}", ctx_.client_ip, ec.message());
        return close_now();
      }
      read_client();
    });
    return;
  }
  read_client();
}

// ---------------------------------------------------------------------------------------------
// Request side

void Session::set_deadline(pipeline::Clock::duration timeout) noexcept {
  deadline_ = std::min(worker_.now() + timeout, request_deadline_);
}

void Session::read_client() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == capacity_ && begin_ > 0) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == capacity_) {
    // Only reachable when a reloaded config raised max_header_bytes above this connection's buffer.
    return reply(Error::header_too_large, {}, true);
  }
  const auto& timeouts = snapshot_->config.timeouts;
  // The header timeout runs from the head's first byte, however slowly the rest trickles in.
  if (phase_ == Phase::reading_head) {
    if (head_started_) deadline_ = head_deadline_;
    else set_deadline(timeouts.client_idle);
  }
  else if (phase_ == Phase::sending) set_deadline(timeouts.client_body);
  client_read_pending_ = true;
  client_.async_read_some(asio::buffer(buffer_.get() + end_, capacity_ - end_),
                          [this](const error_code& ec, std::size_t n) { on_client_read(ec, n); });
}

void Session::on_client_read(const error_code& ec, std::size_t n) {
  client_read_pending_ = false;
  if (phase_ == Phase::closed) return maybe_destroy();
  end_ += static_cast<std::uint32_t>(n);
  worker_.stats()[stats::Counter::bytes_from_clients] += n;
  if (phase_ == Phase::lingering) {
    begin_ = end_ = 0;
    if (ec || n >= linger_budget_) return close_now();
    linger_budget_ -= static_cast<std::uint32_t>(n);
    return linger();
  }
  if (ec) {
    // Client went away (mid-body, the upstream connection is unusable too).
    if (phase_ == Phase::sending) ctx_.outcome = Error::client_closed;
    return close_now();
  }
  if (phase_ == Phase::reading_head) {
    if (!head_started_) start_head_clock();
    if (!parse_request()) read_client();
    return;
  }
  if (phase_ == Phase::sending) continue_upload();
}

void Session::start_head_clock() {
  head_started_ = true;
  set_deadline(snapshot_->config.timeouts.client_header);
  head_deadline_ = deadline_;
}

void Session::next_request() {
  phase_ = Phase::reading_head;
  request_scanner_.reset();
  head_started_ = false;
  request_deadline_ = pipeline::Clock::time_point::max();
  if (begin_ != end_) start_head_clock();
  if (worker_.draining()) return close_now();
  // A new request pins the newest snapshot (the buffer keeps its size: limits apply from the next connection).
  snapshot_ = worker_.snapshot();
  if (begin_ != end_) {
    if (++recursion_ > kMaxRecursion) {
      // Deep pipelining: continue from the event loop rather than growing the stack.
      recursion_ = 0;
      set_deadline(snapshot_->config.timeouts.client_header);
      client_read_pending_ = true;  // holds the session alive like a read would
      asio::post(worker_.io(), [this] {
        client_read_pending_ = false;
        if (phase_ == Phase::closed) return maybe_destroy();
        if (!parse_request()) read_client();
      });
      return;
    }
    if (parse_request()) return;
  }
  recursion_ = 0;
  read_client();
}

// Returns true when the request was taken on (proxied or answered); false when more bytes are needed.
bool Session::parse_request() {
  Error error = Error::ok;
  const auto status =
      http::parse_request_head(client_data(), snapshot_->request_limits, request_scanner_, request_, error);
  if (status == http::ParseStatus::incomplete) return false;
  ctx_.reset();
  retried_stale_ = false;
  ctx_.snapshot = snapshot_.get();
  ctx_.request = &request_;
  ctx_.started = ctx_.now = worker_.now();
  const auto total = snapshot_->config.timeouts.request_total;
  request_deadline_ = total.count() > 0 ? ctx_.started + total : pipeline::Clock::time_point::max();
  ++worker_.stats()[stats::Counter::requests];
  request_active_ = true;
  ++worker_.load().inflight;
  if (status == http::ParseStatus::error) {
    request_.is_head = false;
    request_.connection.close = true;
    ctx_.request_id = worker_.request_ids().next();
    std::memcpy(request_id_.data(), ctx_.request_id.data(), ctx_.request_id.size());
    ctx_.request_id = std::string_view(request_id_.data(), ctx_.request_id.size());
    log_method_.clear();
    log_target_.clear();
    request_body_done_ = false;  // the stream cannot be trusted past a bad head
    reply(error, {}, true);
    return true;
  }
  begin_request();
  return true;
}

void Session::begin_request() {
  // The head is handed on: what follows it is body or the next request. Its bytes stay where they
  // are (and the views into them valid) until the next read into the buffer.
  begin_ += request_.head_bytes;
  const std::string_view id = request_.request_id.empty() ? worker_.request_ids().next() : request_.request_id;
  std::memcpy(request_id_.data(), id.data(), id.size());
  ctx_.request_id = std::string_view(request_id_.data(), id.size());
  if (worker_.access_log().enabled()) {
    log_method_.assign(request_.method);
    log_target_.assign(request_.target.substr(0, 1024));
  }
  request_body_left_ = request_.content_length;
  request_body_done_ = request_.framing == BodyFraming::none;
  const auto max_body = snapshot_->config.limits.max_body_bytes;
  request_chunks_ = http::ChunkedScanner(max_body, snapshot_->config.limits.max_header_bytes);
  if (max_body != 0 && request_.framing == BodyFraming::content_length && request_.content_length > max_body) {
    reply(Error::body_too_large, {}, true);
    return;
  }
  run_pipeline();
}

void Session::resume_pipeline(Waiter& waiter) {
  auto& self = *static_cast<Session*>(waiter.owner);
  if (self.phase_ == Phase::limiting) self.resume_after_hold();
}

void Session::resume_after_hold() {
  ctx_.now = worker_.now();
  run_pipeline();
}

void Session::run_pipeline() {
  const auto verdict = worker_.pipeline().on_request(ctx_);
  if (verdict == pipeline::Verdict::Suspend) {
    phase_ = Phase::limiting;
    const auto now = worker_.now();
    if (ctx_.shape_until > now) {
      // A leaky-bucket limit admitted this request for later: the pipeline goes on (breaker, pick)
      // when its turn comes.
      const auto delay = ctx_.shape_until - now;
      set_deadline(delay + std::chrono::seconds(1));
      start_timer(delay, &Session::resume_after_hold);
      return;
    }
    // Woken by the limiter when its Redis fetch answers (or fails: it then decides without Redis).
    // The deadline is only a backstop: the Redis command timeout ends the wait much sooner.
    set_deadline(std::chrono::seconds(2));
    return;
  }
  if (verdict == pipeline::Verdict::Reply) {
    if (ctx_.reply == Error::no_manifest) {
      char detail[300];
      const auto n = std::snprintf(detail, sizeof detail, "project=%.*s module=%.*s environment=%.*s",
                                   static_cast<int>(std::min<std::size_t>(ctx_.project.size(), 80)),
                                   ctx_.project.data(),
                                   static_cast<int>(std::min<std::size_t>(ctx_.module.size(), 80)), ctx_.module.data(),
                                   static_cast<int>(std::min<std::size_t>(ctx_.environment.size(), 80)),
                                   ctx_.environment.data());
      reply(ctx_.reply, std::string_view(detail, static_cast<std::size_t>(std::max(n, 0))), !request_body_done_);
    } else {
      reply(ctx_.reply, {}, !request_body_done_);
    }
    return;
  }
  start_upstream();
}

// The session's one timer (leaky-bucket hold, retry backoff). A wait that was cancelled may still
// complete after a new one started: each wait is counted (the session is not freed before all
// complete) and carries its generation, so only the newest, uncancelled one acts.
void Session::start_timer(pipeline::Clock::duration delay, Step then) {
  const std::uint32_t generation = ++timer_generation_;
  const Phase armed_in = phase_;
  ++timers_pending_;
  backoff_timer_.expires_after(delay);
  backoff_timer_.async_wait([this, generation, armed_in, then](const error_code& ec) {
    --timers_pending_;
    if (phase_ == Phase::closed) return maybe_destroy();
    if (ec || generation != timer_generation_ || phase_ != armed_in) return;  // cancelled or superseded
    (this->*then)();
  });
}

void Session::cancel_timer() noexcept {
  ++timer_generation_;  // whatever wait is outstanding no longer acts, even if it already completed
  if (timers_pending_ > 0) backoff_timer_.cancel();
}

void Session::start_upstream() {
  if (request_.expect_continue && !request_body_done_) {
    // Answer the interim response ourselves (and drop Expect upstream): the body then flows at once.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    send_client(kContinue, {}, &Session::connect_upstream);
    return;
  }
  connect_upstream();
}

void Session::connect_upstream() {
  const auto& endpoint = *ctx_.endpoint;
  auto& pool = worker_.pool(endpoint.id);
  if (!retried_stale_) ctx_.upstream_started = worker_.now();
  upstream_early_event_ = false;
  upstream_ = retried_stale_ ? nullptr : pool.acquire(this);
  upstream_reused_ = upstream_ != nullptr;
  if (upstream_ != nullptr && holds_pending_) leave_connection_queue();
  if (upstream_ == nullptr && ctx_.manifest->max_connections != 0 && !take_connection_slot()) return;
  // In flight from now until the connection is released (least_connections, latency_aware).
  ++worker_.health().load(endpoint.id).inflight;
  inflight_endpoint_ = endpoint.id;
  counted_inflight_ = true;
  if (upstream_ != nullptr) {
    ++worker_.stats()[stats::Counter::upstream_reuses];
    send_request_head();
    return;
  }
  ++worker_.stats()[stats::Counter::upstream_connects];
  phase_ = Phase::connecting;
  set_deadline(snapshot_->config.timeouts.upstream_connect);
  upstream_ = pool.create(snapshot_->upstream_buffer_bytes);
  if (connection_slot_) {
    // The connection holds the slot from now on, until it closes (idle in the pool included).
    upstream_->count_in(worker_.pipeline().stage<pipeline::BreakerStage>().clusters(), ctx_.manifest->index);
    connection_slot_ = false;
  }
  upstream_->connect(endpoint.address, this);
}

// Envoy's max_connections and max_pending for the manifest, whole process: a new connection takes a
// slot; with none free the request waits (Phase::queued, bounded by timeouts.upstream_connect) if
// fewer than max_pending do, else 503 at once. Woken when a connection of the manifest is released
// or closed on this worker, and by the worker's tick (for slots freed on other workers).
bool Session::take_connection_slot() {
  auto* clusters = worker_.pipeline().stage<pipeline::BreakerStage>().clusters();
  const auto& m = *ctx_.manifest;
  // Every slot taken: idle pooled connections hold slots too, so close one of them first.
  const auto take = [&] {
    return clusters->try_add_connection(m.index, m.max_connections) ||
           (worker_.close_idle_counted(m.index) && clusters->try_add_connection(m.index, m.max_connections));
  };
  if (clusters == nullptr || take()) {
    connection_slot_ = clusters != nullptr;
    leave_connection_queue();
    return true;
  }
  if (!holds_pending_) {
    if (m.max_pending == 0 || !clusters->try_add_pending(m.index, m.max_pending)) {
      ctx_.retry_after_seconds = 1;
      reply(Error::upstream_overflow, {}, !request_body_done_);
      return false;
    }
    holds_pending_ = true;
    set_deadline(snapshot_->config.timeouts.upstream_connect);
  }
  phase_ = Phase::queued;
  connection_waiter_.enqueue(worker_.connection_queue(m.index));
  worker_.ask_peer_to_free_slot(m.index);  // the slots may be idle on another worker
  return false;
}

void Session::leave_connection_queue() noexcept {
  connection_waiter_.unlink();
  if (!holds_pending_) return;
  holds_pending_ = false;
  if (auto* clusters = worker_.pipeline().stage<pipeline::BreakerStage>().clusters())
    clusters->remove_pending(ctx_.manifest->index);
}

void Session::resume_connect(Waiter& waiter) {
  auto& self = *static_cast<Session*>(waiter.owner);
  if (self.phase_ == Phase::queued) self.connect_upstream();
}

void Session::on_upstream_connected(const error_code& ec) {
  if (ec) {
    char detail[160];
    const auto n = std::snprintf(detail, sizeof detail, "%s: %s", ctx_.endpoint->name.c_str(), ec.message().c_str());
    return fail(Error::upstream_connect_failed, std::string_view(detail, static_cast<std::size_t>(std::max(n, 0))));
  }
  send_request_head();
}

void Session::send_request_head() {
  phase_ = Phase::sending;
  set_deadline(snapshot_->config.timeouts.upstream_response);
  proxy::UpstreamRequestParams params;
  params.target = request_.target;
  std::string_view prefix;
  if (ctx_.manifest->strip_path_prefix) {
    params.target = manifest::split_route(request_.target).rest;
    if (params.target.empty() || params.target.front() != '/') prefix = "/";
  }
  params.client_ip = ctx_.client_ip;
  params.request_id = ctx_.request_id;
  params.proto = listener_->tls ? "https" : "http";
  params.default_host = ctx_.endpoint->name;
  params.drop_expect = request_.expect_continue && !request_body_done_;
  params.target_prefix = prefix;
  char* scratch = worker_.scratch();
  const std::size_t head_size = proxy::write_upstream_request_head(request_, params, scratch, worker_.scratch_size());
  if (head_size == 0) return fail(Error::header_too_large);
  upstream_->count_request();

  // Body bytes already received travel in the same write as the head.
  const std::string_view available = client_data();
  std::size_t take = 0;
  switch (request_.framing) {
    case BodyFraming::none: break;
    case BodyFraming::content_length:
      take = static_cast<std::size_t>(std::min<std::uint64_t>(available.size(), request_body_left_));
      request_body_left_ -= take;
      request_body_done_ = request_body_left_ == 0;
      break;
    case BodyFraming::chunked: {
      const auto r = request_chunks_.scan(available);
      if (r.error != Error::ok) return fail(r.error);
      take = r.consumed;
      request_body_done_ = r.done;
      break;
    }
    case BodyFraming::until_close: break;
  }
  const std::string_view body = available.substr(0, take);
  begin_ += static_cast<std::uint32_t>(take);
  ctx_.request_body_bytes += take;
  send_upstream(std::string_view(scratch, head_size), body,
                request_body_done_ ? &Session::request_sent : &Session::upload_more);
}

// A pooled connection the upstream closed just as we reused it (its keep-alive timeout raced our
// request): nothing reached the application, so a body-less request is sent once more on a new
// connection instead of failing with 502. The head is still in the client buffer: nothing is read
// from the client while a body-less request is in flight.
bool Session::retry_stale_connection() {
  if (!upstream_reused_ || retried_stale_ || request_.framing != BodyFraming::none ||
      ctx_.response_started != pipeline::Clock::time_point{})
    return false;
  retried_stale_ = true;
  ++worker_.stats()[stats::Counter::upstream_stale_retries];
  release_upstream(false);
  connect_upstream();
  return true;
}

// The request never left us (the connection was not established): whatever its method, it can go
// to another endpoint. The failed attempt is reported now; the final one by the pipeline.
bool Session::retry_elsewhere(Error error) {
  auto& health = worker_.health();
  const auto now = ctx_.now = worker_.now();
  health.report(*ctx_.manifest, ctx_.endpoint_index, error, 0, resilience::Duration::zero(), now);
  ctx_.attempt_reported = true;
  if (ctx_.attempt + 1 >= health.policy(*ctx_.manifest).max_attempts) return false;
  if (!take_retry_slot()) return false;
  if (!health.state(*ctx_.manifest).budget.try_acquire_retry(now)) return false;
  const auto failed = ctx_.endpoint_index;
  ctx_.tried |= failed < 64 ? std::uint64_t{1} << failed : 0;
  ++ctx_.attempt;
  if (worker_.pipeline().stage<pipeline::PickStage>().on_request(ctx_) != pipeline::Verdict::Continue) {
    // Nowhere else to go: answer for the attempt that failed (its breaker was already told).
    ctx_.endpoint = &ctx_.manifest->endpoints[failed];
    ctx_.endpoint_index = failed;
    ctx_.attempt_reported = true;
    ctx_.retry_after_seconds = 0;
    return false;
  }
  ++worker_.stats()[stats::Counter::upstream_retries];
  connect_upstream();
  return true;
}

// Envoy's max_retries: requests of one cluster being retried at once, whole process.
bool Session::take_retry_slot() noexcept {
  if (ctx_.holds_retry_slot || ctx_.manifest->max_active_retries == 0) return true;
  auto* clusters = worker_.pipeline().stage<pipeline::BreakerStage>().clusters();
  if (clusters != nullptr && !clusters->try_add_retry(ctx_.manifest->index, ctx_.manifest->max_active_retries))
    return false;
  ctx_.holds_retry_slot = clusters != nullptr;
  return true;
}

bool Session::idempotent() const noexcept {
  const auto m = request_.method;
  if (m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE") return true;
  for (const http::Header& h : request_headers_)
    if (h.kind == http::HeaderKind::other && http::iequals(h.name, "idempotency-key")) return true;
  return false;
}

// An idempotent request without a body (so nothing is lost by sending it again) whose upstream reset
// before answering, or answered with a status listed in resilience.retries.on_statuses, goes to
// another endpoint after an exponential backoff with full jitter — if attempts, the retry budget and
// a usable endpoint allow; otherwise the answer stands. The request head is still in the buffer.
bool Session::retry_after_bad_answer(Error error, unsigned status) {
  auto& health = worker_.health();
  const auto& policy = health.policy(*ctx_.manifest);
  if (error == Error::upstream_reset && !policy.retry_on_reset) return false;
  // upstream_timeout reaches here only from a per-try timeout: retrying it is what that setting asks.
  if (request_.framing != BodyFraming::none || response_head_sent_ || !idempotent()) return false;
  if (ctx_.attempt + 1 >= policy.max_attempts) return false;
  auto& state = health.state(*ctx_.manifest);
  const auto now = ctx_.now = worker_.now();
  if (state.budget.available(now) == 0 || !take_retry_slot()) return false;
  const auto failed = ctx_.endpoint_index;
  const auto failed_tried = ctx_.tried;
  const auto latency = ctx_.response_started == pipeline::Clock::time_point{}
                           ? resilience::Duration::zero()
                           : ctx_.response_started - ctx_.upstream_started;
  ctx_.tried |= failed < 64 ? std::uint64_t{1} << failed : 0;
  ++ctx_.attempt;
  if (worker_.pipeline().stage<pipeline::PickStage>().on_request(ctx_) != pipeline::Verdict::Continue ||
      !state.budget.try_acquire_retry(now)) {
    if (ctx_.endpoint_index != failed) health.breaker(ctx_.endpoint->id).on_cancelled();  // admitted, unused
    --ctx_.attempt;
    ctx_.tried = failed_tried;
    ctx_.endpoint = &ctx_.manifest->endpoints[failed];
    ctx_.endpoint_index = failed;
    ctx_.reply = Error::ok;
    ctx_.retry_after_seconds = 0;
    return false;
  }
  health.report(*ctx_.manifest, failed, error, status, latency, now);
  ++worker_.stats()[stats::Counter::upstream_retries];
  release_upstream(false);  // its answer is not read: the connection cannot be reused
  ctx_.response_started = {};
  response_scanner_.reset();
  const auto delay = resilience::backoff_delay(ctx_.attempt - 1, policy.backoff_base, policy.backoff_max,
                                               health.random());
  phase_ = Phase::connecting;
  set_deadline(delay + snapshot_->config.timeouts.upstream_connect);
  start_timer(delay, &Session::connect_upstream);
  return true;
}

void Session::upload_more() {
  if (upstream_early_event_) return request_sent();  // the upstream has answered or closed: stop sending
  read_client();
}

void Session::continue_upload() {
  const std::string_view available = client_data();
  std::size_t take = 0;
  if (request_.framing == BodyFraming::content_length) {
    take = static_cast<std::size_t>(std::min<std::uint64_t>(available.size(), request_body_left_));
    request_body_left_ -= take;
    request_body_done_ = request_body_left_ == 0;
  } else {
    const auto r = request_chunks_.scan(available);
    if (r.error != Error::ok) return fail(r.error);
    take = r.consumed;
    request_body_done_ = r.done;
  }
  begin_ += static_cast<std::uint32_t>(take);
  ctx_.request_body_bytes += take;
  send_upstream({}, available.substr(0, take), request_body_done_ ? &Session::request_sent : &Session::upload_more);
}

void Session::request_sent() {
  phase_ = Phase::awaiting_response;
  set_deadline(snapshot_->config.timeouts.upstream_response);
  const auto per_try = worker_.health().policy(*ctx_.manifest).per_try_timeout;
  if (per_try.count() > 0) deadline_ = std::min(deadline_, ctx_.upstream_started + per_try);
  response_scanner_.reset();
  response_head_sent_ = false;
  process_upstream();
}

void Session::send_upstream(std::string_view head, std::string_view body, Step next) {
  error_code ec;
  const std::size_t n = try_write(upstream_->socket(), head, body, ec);
  if (!ec && n == head.size() + body.size()) return (this->*next)();
  if (ec && ec != asio::error::would_block) {
    // Broken upstream: maybe it answered before closing (e.g. 413); otherwise a 502.
    upstream_early_event_ = true;
    if (!upstream_->data().empty()) return request_sent();
    if (retry_stale_connection()) return;
    return fail(Error::upstream_reset, ec.message());
  }
  body = keep_unsent(head, body, n, next);
  upstream_->async_write(spill_, body);
}

// A write the kernel took only `written` bytes of: the unsent part of the head (scratch space, about
// to be reused) is copied to spill_; the body view stays valid as its buffer is not touched until the
// write ends. Returns the unsent body; `next` runs once everything is written.
std::string_view Session::keep_unsent(std::string_view head, std::string_view body, std::size_t written, Step next) {
  if (written < head.size()) {
    spill_.assign(head.substr(written));
  } else {
    spill_.clear();
    body.remove_prefix(written - head.size());
  }
  after_write_ = next;
  return body;
}

void Session::on_upstream_write(const error_code& ec) {
  if (ec) {
    upstream_early_event_ = true;
    if (!upstream_->data().empty()) return request_sent();
    return fail(Error::upstream_reset, ec.message());
  }
  (this->*after_write_)();
}

// ---------------------------------------------------------------------------------------------
// Response side

void Session::on_upstream_read(const error_code&) {
  // The error (end of stream, reset) is remembered by the connection as eof().
  switch (phase_) {
    case Phase::sending: upstream_early_event_ = true; return;  // handled once the upload stops
    case Phase::awaiting_response:
    case Phase::relaying: return process_upstream();
    default: return;
  }
}

void Session::process_upstream() {
  if (phase_ == Phase::awaiting_response) process_response_head();
  else if (phase_ == Phase::relaying) relay_response_body({});
}

// Parses the response head once complete and sends it on with the body bytes that came with it.
void Session::process_response_head() {
  for (;;) {
    const std::string_view data = upstream_->data();
    if (data.empty()) {
      if (upstream_->eof()) {
        if (retry_stale_connection() || retry_after_bad_answer(Error::upstream_reset, 0)) return;
        fail(Error::upstream_reset, ctx_.endpoint->name);
        return;
      }
      upstream_->read();
      return;
    }
    if (ctx_.response_started == pipeline::Clock::time_point{}) ctx_.response_started = worker_.now();
    Error error = Error::ok;
    const auto status = http::parse_response_head(data, snapshot_->response_limits, response_scanner_,
                                                  request_.is_head, response_, error);
    if (status == http::ParseStatus::error) {
      fail(Error::upstream_bad_response, ctx_.endpoint->name);
      return;
    }
    if (status == http::ParseStatus::incomplete) {
      if (upstream_->eof()) {
        fail(Error::upstream_reset, ctx_.endpoint->name);
        return;
      }
      if (upstream_->buffer_full()) {
        fail(Error::upstream_bad_response, "response head too large");
        return;
      }
      upstream_->read();
      return;
    }
    if (response_.status < 200) {
      // Interim responses (100, 103) are not relayed: we answered 100-continue ourselves.
      if (response_.status == 101) {  // we never forward Upgrade, so a switch is a protocol error
        fail(Error::upstream_bad_response, "unexpected 101");
        return;
      }
      upstream_->consume(response_.head_bytes);
      continue;
    }
    break;
  }
  if (worker_.health().policy(*ctx_.manifest).retries_status(response_.status) &&
      retry_after_bad_answer(Error::ok, response_.status))
    return;
  ctx_.status = response_.status;
  const bool client_http10 = request_.version == http::Version::http10;
  dechunk_ = false;
  switch (response_.framing) {
    case BodyFraming::none: client_framing_ = ClientFraming::none; break;
    case BodyFraming::content_length: client_framing_ = ClientFraming::content_length; break;
    case BodyFraming::chunked:
      if (client_http10) {
        client_framing_ = ClientFraming::until_close;
        dechunk_ = true;
      } else {
        client_framing_ = ClientFraming::chunked;
      }
      break;
    case BodyFraming::until_close: client_framing_ = ClientFraming::until_close; break;
  }
  response_body_left_ = response_.content_length;
  response_chunks_.reset();
  upstream_reusable_ = response_.keep_alive() && response_.framing != BodyFraming::until_close &&
                       request_body_done_ && !upstream_early_event_;
  close_after_response_ = !request_.keep_alive() || worker_.draining() ||
                          client_framing_ == ClientFraming::until_close || !request_body_done_;
  proxy::ClientResponseParams params{ctx_.request_id, ctx_.extra_response_headers(), client_framing_,
                                     close_after_response_, client_http10};
  const std::size_t head_size =
      proxy::write_client_response_head(response_, params, worker_.scratch(), worker_.scratch_size());
  if (head_size == 0) {
    fail(Error::upstream_bad_response, "response head too large");
    return;
  }
  upstream_->consume(response_.head_bytes);
  phase_ = Phase::relaying;
  response_head_sent_ = true;  // from here on, a failure can only cut the connection
  relay_response_body(std::string_view(worker_.scratch(), head_size));
  return;
}

// Sends `head` (if any) with the body bytes the upstream buffer holds, then continues.
void Session::relay_response_body(std::string_view head) {
  std::string_view data = upstream_->data();
  bool done = false;
  std::size_t take = 0;
  switch (response_.framing) {
    case BodyFraming::none: done = true; break;
    case BodyFraming::content_length:
      take = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), response_body_left_));
      response_body_left_ -= take;
      done = response_body_left_ == 0;
      break;
    case BodyFraming::chunked: {
      if (dechunk_) {
        // Payload runs are compacted in place to the front of the unread bytes (output <= input).
        char* out = upstream_->mutable_data();
        std::size_t payload = 0;
        const auto r = response_chunks_.scan(data, [&](const char* p, std::size_t n) {
          std::memmove(out + payload, p, n);
          payload += n;
        });
        if (r.error != Error::ok) return fail(Error::upstream_bad_response, "bad chunked framing");
        // Drop the framing bytes that were consumed: keep [payload) then whatever followed the message.
        const std::size_t rest = data.size() - r.consumed;
        std::memmove(out + payload, out + r.consumed, rest);
        upstream_->shrink_data(payload + rest);
        data = upstream_->data();
        take = payload;
        done = r.done;
      } else {
        const auto r = response_chunks_.scan(data);
        if (r.error != Error::ok) return fail(Error::upstream_bad_response, "bad chunked framing");
        take = r.consumed;
        done = r.done;
      }
      break;
    }
    case BodyFraming::until_close:
      take = data.size();
      done = upstream_->eof();
      break;
  }
  if (!done && take == data.size() && upstream_->eof() && response_.framing != BodyFraming::until_close) {
    // The upstream closed in the middle of a framed body: the client must not take it as complete.
    ctx_.outcome = Error::upstream_reset;
    upstream_reusable_ = false;
    close_after_response_ = true;
    if (head.empty() && take == 0) return close_now();
  }
  if (take < data.size()) upstream_reusable_ = false;  // bytes beyond the response: desynchronised
  const std::string_view body = data.substr(0, take);
  upstream_->consume(take);
  ctx_.response_bytes += head.size() + body.size();
  const bool truncated = ctx_.outcome == Error::upstream_reset;
  send_client(head, body, done ? &Session::response_done : truncated ? &Session::close_now : &Session::relay_more);
}

void Session::relay_more() {
  set_deadline(snapshot_->config.timeouts.upstream_response);
  if (!upstream_->data().empty() || upstream_->eof()) return relay_response_body({});
  upstream_->read();
}

void Session::response_done() {
  release_upstream(upstream_reusable_);
  finish_request();
  if (close_after_response_) return close_now();
  next_request();
}

// ---------------------------------------------------------------------------------------------
// Outcomes

void Session::fail(Error error, std::string_view detail) {
  release_upstream(false);
  if ((error == Error::upstream_connect_failed || error == Error::upstream_connect_timeout) && retry_elsewhere(error))
    return;
  ctx_.outcome = error;
  if (response_head_sent_ && phase_ == Phase::relaying) return close_now();
  reply(error, detail, !request_body_done_);
}

void Session::reply(Error error, std::string_view detail, bool close) {
  phase_ = Phase::replying;
  if (ctx_.outcome == Error::ok) ctx_.outcome = error;
  const auto& info = error_info(error);
  ctx_.status = info.status;
  close_after_response_ = close || worker_.draining() || !request_.keep_alive();
  const bool head_only = request_.is_head && error != Error::bad_request;
  const std::size_t size =
      proxy::write_local_reply(error, detail, ctx_.request_id, close_after_response_, head_only, worker_.scratch(),
                               worker_.scratch_size(), ctx_.retry_after_seconds, ctx_.extra_response_headers());
  ctx_.response_bytes += size;
  set_deadline(snapshot_->config.timeouts.client_idle);
  send_client(std::string_view(worker_.scratch(), size), {}, &Session::reply_done);
}

void Session::reply_done() {
  finish_request();
  if (!close_after_response_) return next_request();
  linger();
}

void Session::finish_request() {
  if (!request_active_) return;
  request_active_ = false;
  --worker_.load().inflight;
  auto& counters = worker_.stats();
  counters.responses_by_class[std::min<unsigned>(ctx_.status / 100, 5)]++;
  counters.errors[static_cast<std::size_t>(ctx_.outcome)]++;
  ctx_.now = worker_.now();
  worker_.pipeline().on_complete(ctx_);
  if (worker_.access_log().enabled()) {
    worker_.access_log().write(AccessRecord{ctx_, log_method_, log_target_,
                                            ctx_.endpoint != nullptr ? std::string_view(ctx_.endpoint->name)
                                                                     : std::string_view(),
                                            worker_.now()});
  }
}

void Session::release_upstream(bool reusable) noexcept {
  if (counted_inflight_) {
    counted_inflight_ = false;
    --worker_.health().load(inflight_endpoint_).inflight;
  }
  if (upstream_ == nullptr) return;
  // A connection of a manifest under max_connections becomes free (idle, or its slot with it).
  if (ctx_.manifest != nullptr && ctx_.manifest->max_connections != 0) worker_.wake_connection_queue(ctx_.manifest->index);
  upstream::UpstreamConnection* conn = upstream_;
  upstream_ = nullptr;
  if (reusable) {
    conn->pool().release(conn, snapshot_->config.upstream_pool.max_idle_per_endpoint, worker_.now());
  } else {
    conn->close();
  }
}

// Half-close, then read and discard for a while so the reply is not destroyed by a reset
// (closing with unread data makes the kernel send RST).
void Session::linger() {
  if (phase_ != Phase::lingering) {
    phase_ = Phase::lingering;
    linger_budget_ = kLingerBytes;
    client_.shutdown_send();
    deadline_ = worker_.now() + kLingerTime;
  }
  begin_ = end_ = 0;
  client_read_pending_ = true;
  client_.async_read_some(asio::buffer(buffer_.get(), capacity_),
                          [this](const error_code& ec, std::size_t n) { on_client_read(ec, n); });
}

void Session::send_client(std::string_view head, std::string_view body, Step next) {
  error_code ec;
  const std::size_t n = client_.try_write(head, body, ec);
  worker_.stats()[stats::Counter::bytes_to_clients] += n;
  if (!ec && n == head.size() + body.size()) return (this->*next)();
  if (ec && ec != asio::error::would_block) {
    if (ctx_.outcome == Error::ok) ctx_.outcome = Error::client_closed;
    return close_now();
  }
  body = keep_unsent(head, body, n, next);
  client_write_pending_ = true;
  set_deadline(snapshot_->config.timeouts.client_idle);
  client_.async_write(spill_, body, [this](const error_code& ec, std::size_t written) {
    worker_.stats()[stats::Counter::bytes_to_clients] += written;
    on_client_written(ec);
  });
}

void Session::on_client_written(const error_code& ec) {
  client_write_pending_ = false;
  if (phase_ == Phase::closed) return maybe_destroy();
  if (ec) {
    if (ctx_.outcome == Error::ok) ctx_.outcome = Error::client_closed;
    return close_now();
  }
  (this->*after_write_)();
}

void Session::on_deadline(pipeline::Clock::time_point now) {
  const bool total = now >= request_deadline_;
  switch (phase_) {
    case Phase::reading_head:
      if (!head_started_ || begin_ == end_) return close_now();  // idle keep-alive connection
      {
        // Too slow to send a head (slowloris): a best-effort 408, no waiting on a slow reader.
        const std::size_t size = proxy::write_local_reply(Error::client_timeout, {}, worker_.request_ids().next(),
                                                          true, false, worker_.scratch(), worker_.scratch_size());
        error_code ignored;
        client_.try_write(std::string_view(worker_.scratch(), size), {}, ignored);
        return close_now();
      }
    case Phase::limiting:
      ctx_.lease_waiter.unlink();
      cancel_timer();
      ctx_.retry_after_seconds = 1;
      return reply(Error::rate_limit_unavailable, {}, !request_body_done_);
    case Phase::queued:
      leave_connection_queue();
      if (total) {
        // Never sent: nothing to hold against the endpoint (its probe slot, if any, is freed).
        worker_.health().breaker(ctx_.endpoint->id).on_cancelled();
        ctx_.attempt_reported = true;
        return reply(Error::request_timeout, {}, !request_body_done_);
      }
      ctx_.retry_after_seconds = 1;
      return reply(Error::upstream_overflow, {}, !request_body_done_);
    case Phase::connecting:
      cancel_timer();
      return fail(total ? Error::request_timeout : Error::upstream_connect_timeout, ctx_.endpoint->name);
    case Phase::awaiting_response: {
      const auto per_try = worker_.health().policy(*ctx_.manifest).per_try_timeout;
      if (!total && per_try.count() > 0 && now >= ctx_.upstream_started + per_try &&
          retry_after_bad_answer(Error::upstream_timeout, 0))
        return;
      return fail(total ? Error::request_timeout : Error::upstream_timeout, ctx_.endpoint->name);
    }
    case Phase::sending:
      if (client_write_pending_ || client_read_pending_) ctx_.outcome = Error::client_timeout;
      else ctx_.outcome = total ? Error::request_timeout : Error::upstream_timeout;
      if (!client_read_pending_) return fail(ctx_.outcome, ctx_.endpoint->name);
      return close_now();
    case Phase::relaying:
      ctx_.outcome = total ? Error::request_timeout : Error::upstream_timeout;
      return close_now();
    case Phase::replying:
    case Phase::lingering:
      return close_now();
    case Phase::closed:
      return;
  }
}

void Session::drain() noexcept {
  if (phase_ == Phase::reading_head && (!head_started_ || begin_ == end_)) close_now();
  // Otherwise the response carries Connection: close and the session ends after it.
}

void Session::close_now() noexcept {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  ctx_.lease_waiter.unlink();
  if (holds_pending_ || connection_waiter_.waiting()) leave_connection_queue();
  if (connection_slot_) {
    connection_slot_ = false;
    if (auto* clusters = worker_.pipeline().stage<pipeline::BreakerStage>().clusters())
      clusters->remove_connection(ctx_.manifest->index);
  }
  cancel_timer();
  release_upstream(false);
  if (request_active_) {
    if (ctx_.outcome == Error::ok) ctx_.outcome = Error::client_closed;
    finish_request();
  }
  client_.close();
  deadline_ = pipeline::Clock::time_point::max();
  maybe_destroy();
}

void Session::maybe_destroy() noexcept {
  if (phase_ == Phase::closed && !client_read_pending_ && !client_write_pending_ && timers_pending_ == 0) {
    snapshot_.reset();
    worker_.return_client_buffer(std::move(buffer_));
    worker_.session_closed(this);  // may recycle `this`: nothing after this line
  }
}

}  // namespace frontdoor::server
