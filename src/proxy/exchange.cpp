#include "frontdoor/proxy/exchange.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "frontdoor/core/partial_write.hpp"
#include "frontdoor/resilience/retry_budget.hpp"

namespace frontdoor::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using http::BodyFraming;
using stats::Counter;

namespace {

// Non-blocking gather write; `n` is what the kernel took.
std::size_t try_write(asio::ip::tcp::socket& socket, std::string_view head, std::string_view body, error_code& ec) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  return socket.write_some(buffers, ec);
}

bool is_idempotent(const http::RequestHead& request) noexcept {
  const auto m = request.method;
  if (m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE") return true;
  for (const http::Header& h : *request.headers)
    if (h.kind == http::HeaderKind::other && http::iequals(h.name, "idempotency-key")) return true;
  return false;
}

// The client's Upgrade value when the manifest tunnels its first protocol ("websocket",
// "WebSocket/13", ...): offered to the upstream. Otherwise empty: the request goes as a plain one
// (a server may ignore an upgrade it does not take, RFC 9110 §7.8).
std::string_view offered_upgrade(const http::RequestHead& request, const manifest::Manifest& manifest) noexcept {
  if (request.upgrade.empty()) return {};
  std::string_view first = request.upgrade.substr(0, request.upgrade.find(','));
  first = first.substr(0, first.find('/'));
  while (!first.empty() && (first.back() == ' ' || first.back() == '\t')) first.remove_suffix(1);
  for (const std::string& allowed : manifest.upgrades)
    if (http::iequals(first, allowed)) return request.upgrade;
  return {};
}

}  // namespace

UpstreamExchange::UpstreamExchange(ExchangeHost& host, ClientSide& client)
    : host_(host), client_(client), backoff_timer_(host.io()) {
  connection_waiter_.owner = this;
  connection_waiter_.wake = &UpstreamExchange::resume_connect;
  response_.headers = &response_headers_;
}

const resilience::ResiliencePolicy& UpstreamExchange::policy() noexcept {
  return host_.health().policy(*ctx_->manifest);
}

void UpstreamExchange::start(pipeline::RequestContext& ctx, const http::RequestHead& request, http::BodyCursor& body,
                             bool tls) {
  ctx_ = &ctx;
  request_ = &request;
  body_ = &body;
  tls_ = tls;
  // The session answered 100 Continue itself when the body was still to come: Expect is not forwarded.
  drop_expect_ = request.expect_continue && !body.done();
  upgrade_ = offered_upgrade(request, *ctx.manifest);
  retry_.start(is_idempotent(request), body.has_body());
  force_new_connection_ = false;
  response_head_sent_ = false;
  down_busy_ = false;
  client_finished_ = false;
  upstream_finished_ = false;
  down_bytes_ = up_bytes_ = 0;
  const auto max_headers = snapshot().config.limits.max_header_count;
  if (response_headers_.capacity() < max_headers) response_headers_.reserve(max_headers);
  connect_upstream();
}

// ---------------------------------------------------------------------------------------------
// Connection

void UpstreamExchange::connect_upstream() {
  const auto& endpoint = *ctx_->endpoint;
  auto& pool = host_.pool(endpoint.id);
  // A stale connection's retry is the same attempt: its clock keeps running.
  if (!force_new_connection_) ctx_->upstream_started = host_.now();
  upstream_early_event_ = false;
  request_bytes_sent_ = false;
  // A request that cannot be sent again if the connection turns out closed asks the pool to confirm
  // it open first (one receive); the others rely on the stale retry and cost nothing.
  upstream_ = force_new_connection_ ? nullptr : pool.acquire(this, !retry_.stale_retry_available());
  force_new_connection_ = false;
  upstream_reused_ = upstream_ != nullptr;
  if (upstream_ != nullptr && holds_pending_) leave_connection_queue();
  if (upstream_ == nullptr && ctx_->manifest->max_connections != 0 && !take_connection_slot()) return;
  // In flight from now until the connection is released (least_connections, latency_aware).
  ++host_.health().load(endpoint.id).inflight;
  inflight_endpoint_ = endpoint.id;
  counted_inflight_ = true;
  if (upstream_ != nullptr) {
    ++host_.counters()[Counter::upstream_reuses];
    send_request_head();
    return;
  }
  ++host_.counters()[Counter::upstream_connects];
  phase_ = Phase::connecting;
  client_.set_deadline(snapshot().config.timeouts.upstream_connect);
  upstream_ = pool.create(snapshot().upstream_buffer_bytes);
  if (connection_slot_) {
    // The connection holds the slot from now on, until it closes (idle in the pool included).
    upstream_->count_in(host_.clusters(), ctx_->manifest->index);
    connection_slot_ = false;
  }
  upstream_->connect(endpoint.address, this);
}

// Envoy's max_connections and max_pending for the manifest, whole process: a new connection takes a
// slot; with none free the request waits (Phase::queued, bounded by timeouts.upstream_connect) if
// fewer than max_pending do, else 503 at once. Woken when a connection of the manifest is released
// or closed on this worker, and by the worker's tick (for slots freed on other workers).
bool UpstreamExchange::take_connection_slot() {
  auto* clusters = host_.clusters();
  const auto& m = *ctx_->manifest;
  // Every slot taken: idle pooled connections hold slots too, so close one of them first.
  const auto take = [&] {
    return clusters->try_add_connection(m.index, m.max_connections) ||
           (host_.close_idle_counted(m.index) && clusters->try_add_connection(m.index, m.max_connections));
  };
  if (clusters == nullptr || take()) {
    connection_slot_ = clusters != nullptr;
    leave_connection_queue();
    return true;
  }
  if (!holds_pending_) {
    if (m.max_pending == 0 || !clusters->try_add_pending(m.index, m.max_pending)) {
      ctx_->retry_after_seconds = 1;
      fail(Error::upstream_overflow);
      return false;
    }
    holds_pending_ = true;
    client_.set_deadline(snapshot().config.timeouts.upstream_connect);
  }
  phase_ = Phase::queued;
  connection_waiter_.enqueue(host_.connection_queue(m.index));
  host_.ask_peer_to_free_slot(m.index);  // the slots may be idle on another worker
  return false;
}

void UpstreamExchange::leave_connection_queue() noexcept {
  connection_waiter_.unlink();
  if (!holds_pending_) return;
  holds_pending_ = false;
  if (auto* clusters = host_.clusters()) clusters->remove_pending(ctx_->manifest->index);
}

void UpstreamExchange::resume_connect(Waiter& waiter) {
  auto& self = *static_cast<UpstreamExchange*>(waiter.owner);
  if (self.phase_ == Phase::queued) self.connect_upstream();
}

void UpstreamExchange::on_upstream_connected(const error_code& ec) {
  if (!ec) return send_request_head();
  char detail[160];
  const auto n = std::snprintf(detail, sizeof detail, "%s: %s", ctx_->endpoint->name.c_str(), ec.message().c_str());
  release_upstream(false);
  if (try_again(AttemptFailure::connect_failed, Error::upstream_connect_failed, 0)) return;
  fail(Error::upstream_connect_failed, std::string_view(detail, static_cast<std::size_t>(std::max(n, 0))));
}

// ---------------------------------------------------------------------------------------------
// Request: head, then body

void UpstreamExchange::send_request_head() {
  phase_ = Phase::sending;
  response_scanner_.reset();  // an answer may come before the request is out (upstream_answered_early)
  early_answer_held_ = false;
  client_.set_deadline(snapshot().config.timeouts.upstream_response);
  UpstreamRequestParams params;
  params.target = request_->target;
  if (ctx_->manifest->strip_path_prefix) params.target = manifest::split_route(request_->target).rest;
  // A stripped route, or absolute-form without a path ("http://h?q"), still goes out in origin-form.
  if ((params.target.empty() || params.target.front() != '/') && params.target != "*") params.target_prefix = "/";
  params.client_ip = ctx_->peer_ip;  // each proxy appends the address it received the request from
  params.real_client_ip = ctx_->client_ip;
  params.peer_trusted = ctx_->peer_trusted;
  params.request_id = ctx_->request_id;
  params.proto = tls_ ? "https" : "http";
  params.default_host = ctx_->endpoint->authority;
  params.drop_expect = drop_expect_;
  params.upgrade = upgrade_;
  char* scratch = host_.scratch();
  const std::size_t head_size = write_upstream_request_head(*request_, params, scratch, host_.scratch_size());
  if (head_size == 0) return fail(Error::header_too_large);
  upstream_->count_request();
  // Body bytes already received travel in the same write as the head.
  const std::string_view available = client_.client_data();
  const auto take = body_->take(available);
  if (take.error != Error::ok) return fail(take.error);
  client_.consume_client_data(take.bytes);
  ctx_->request_body_bytes += take.bytes;
  send_upstream(std::string_view(scratch, head_size), available.substr(0, take.bytes),
                body_->done() ? &UpstreamExchange::request_sent : &UpstreamExchange::upload_more);
}

void UpstreamExchange::upload_more() {
  if (upstream_early_event_) return request_sent();  // the upstream has answered or closed: stop sending
  // Bytes may have come while the write was in flight (a read armed to watch for a hang-up).
  if (!client_.client_data().empty()) return on_client_data();
  waiting_for_client_ = true;
  client_.read_client_body();
}

void UpstreamExchange::on_client_data() {
  waiting_for_client_ = false;
  if (phase_ == Phase::tunneling) return tunnel_up();
  const std::string_view available = client_.client_data();
  const auto take = body_->take(available);
  if (take.error != Error::ok) return fail(take.error);
  client_.consume_client_data(take.bytes);
  ctx_->request_body_bytes += take.bytes;
  send_upstream({}, available.substr(0, take.bytes),
                body_->done() ? &UpstreamExchange::request_sent : &UpstreamExchange::upload_more);
}

void UpstreamExchange::request_sent() {
  phase_ = Phase::awaiting_response;
  client_.request_sent();
  client_.set_deadline(snapshot().config.timeouts.upstream_response);
  const auto per_try = policy().per_try_timeout;
  if (per_try.count() > 0) client_.cap_deadline(ctx_->upstream_started + per_try);
  response_scanner_.reset();
  response_head_sent_ = false;
  process_upstream();
}

void UpstreamExchange::send_upstream(std::string_view head, std::string_view body, Step next) {
  error_code ec;
  const std::size_t n = try_write(upstream_->socket(), head, body, ec);
  if (n > 0) request_bytes_sent_ = true;
  if (!ec && n == head.size() + body.size()) return (this->*next)();
  if (ec && ec != asio::error::would_block) return upstream_write_failed(ec);
  request_bytes_sent_ = true;  // an asynchronous write may send any part of it
  body = keep_unsent(head, body, n, next);
  upstream_->async_write(spill_, body);
}

void UpstreamExchange::on_upstream_write(const error_code& ec) {
  // An upload stopped by an early answer (upstream_answered_early): the response path owns the exchange.
  if (phase_ == Phase::awaiting_response || phase_ == Phase::relaying) return;
  if (ec) return upstream_write_failed(ec);
  (this->*after_upstream_write_)();
}

// Broken upstream: maybe it answered before closing (e.g. 413); otherwise the attempt failed.
void UpstreamExchange::upstream_write_failed(const error_code& ec) {
  if (phase_ == Phase::tunneling) return end_tunnel();
  upstream_early_event_ = true;
  if (!upstream_->data().empty()) return request_sent();
  if (try_again(AttemptFailure::closed, Error::upstream_reset, 0)) return;
  fail(Error::upstream_reset, ec.message());
}

// A write the kernel took only `written` bytes of: the rest is kept for the asynchronous write
// (core::keep_unsent); `next` runs once everything is written.
std::string_view UpstreamExchange::keep_unsent(std::string_view head, std::string_view body, std::size_t written,
                                               Step next) {
  after_upstream_write_ = next;
  return core::keep_unsent(spill_, head, body, written);
}

// ---------------------------------------------------------------------------------------------
// Response: head, then body

void UpstreamExchange::on_upstream_read(const error_code&) {
  // The error (end of stream, reset) is remembered by the connection as eof().
  switch (phase_) {
    case Phase::sending: return upstream_answered_early();
    case Phase::awaiting_response:
    case Phase::relaying: return process_upstream();
    case Phase::tunneling: return tunnel_down();
    default: return;
  }
}

// The upstream spoke before the whole request went out. An interim 1xx is no answer: skipped, the
// upload goes on. An answer that refuses the rest (an error status, or one closing the connection:
// RFC 9112 §9.6), or the upstream's end, stops the upload at once and is relayed, whether we were
// waiting for the client's body or for the upstream to take ours. Any other answer is relayed once
// the body has gone out (no full duplex: the upload completes first).
void UpstreamExchange::upstream_answered_early() {
  for (;;) {
    const std::string_view data = upstream_->data();
    if (data.empty()) {
      if (!upstream_->eof()) return upstream_->read();
      break;
    }
    Error error = Error::ok;
    const auto status = http::parse_response_head(data, snapshot().response_limits, response_scanner_,
                                                  request_->is_head, response_, error);
    if (status == http::ParseStatus::incomplete && !upstream_->eof() && !upstream_->buffer_full())
      return upstream_->read();
    if (status != http::ParseStatus::complete) break;  // broken or cut short: the response path says so
    if (response_.status >= 200 || response_.status == 101) {
      if (response_.status < 400 && response_.keep_alive()) {
        early_answer_held_ = true;  // it reads on: relayed after the upload (or at a stall, on_deadline)
        return;
      }
      break;
    }
    upstream_->consume(response_.head_bytes);
    response_scanner_.reset();
  }
  upstream_early_event_ = true;
  // Body bytes still to come stay unread (the client connection closes after the answer); an
  // upstream write in flight is left to end with the connection (on_upstream_write ignores it).
  waiting_for_client_ = false;
  request_sent();
}

void UpstreamExchange::process_upstream() {
  if (phase_ == Phase::awaiting_response) process_response_head();
  else if (phase_ == Phase::relaying) relay_response_body({});
}

// Parses the response head once complete and sends it on with the body bytes that came with it.
void UpstreamExchange::process_response_head() {
  for (;;) {
    const std::string_view data = upstream_->data();
    if (data.empty()) {
      if (upstream_->eof()) {
        if (try_again(AttemptFailure::closed, Error::upstream_reset, 0)) return;
        return fail(Error::upstream_reset, ctx_->endpoint->name);
      }
      return upstream_->read();
    }
    if (ctx_->response_started == pipeline::Clock::time_point{}) ctx_->response_started = host_.now();
    Error error = Error::ok;
    const auto status = http::parse_response_head(data, snapshot().response_limits, response_scanner_,
                                                  request_->is_head, response_, error);
    if (status == http::ParseStatus::error) return fail(Error::upstream_bad_response, ctx_->endpoint->name);
    if (status == http::ParseStatus::incomplete) {
      if (upstream_->eof()) return fail(Error::upstream_reset, ctx_->endpoint->name);
      if (upstream_->buffer_full()) return fail(Error::upstream_bad_response, "response head too large");
      return upstream_->read();
    }
    if (response_.status >= 200) break;
    if (response_.status == 101) {
      if (upgrade_.empty()) return fail(Error::upstream_bad_response, "unexpected 101");  // no upgrade offered
      std::string_view chosen;
      for (const http::Header& h : response_headers_)
        if (h.kind == http::HeaderKind::upgrade) chosen = h.value;
      if (!http::upgrade_was_offered(upgrade_, chosen))
        return fail(Error::upstream_bad_response, "a 101 without the protocol offered in its Upgrade");
      return start_tunnel();
    }
    // Interim responses (100, 103) are not relayed: we answered 100-continue ourselves.
    upstream_->consume(response_.head_bytes);
  }
  if (policy().retries_status(response_.status) && try_again(AttemptFailure::retryable_status, Error::ok, response_.status))
    return;
  const bool client_http10 = request_->version == http::Version::http10;
  if (client_http10 && response_.framing != BodyFraming::none && has_other_transfer_codings(response_)) {
    // Relayed undeclared, a gzip (say) body would reach the client as if it were the content. (A
    // HEAD or 304 answer has no body: its Transfer-Encoding is only dropped.)
    return fail(Error::unrelayable_response, "a transfer coding an HTTP/1.0 client cannot take");
  }
  ctx_->status = response_.status;
  dechunk_ = false;
  switch (response_.framing) {
    case BodyFraming::none: client_framing_ = ClientFraming::none; break;
    case BodyFraming::content_length: client_framing_ = ClientFraming::content_length; break;
    case BodyFraming::chunked:
      dechunk_ = client_http10;
      client_framing_ = client_http10 ? ClientFraming::until_close : ClientFraming::chunked;
      break;
    case BodyFraming::until_close: client_framing_ = ClientFraming::until_close; break;
  }
  response_body_left_ = response_.content_length;
  response_chunks_.reset();
  upstream_reusable_ = response_.reusable() && response_.framing != BodyFraming::until_close && body_->done() &&
                       !upstream_early_event_;
  close_after_response_ = !request_->keep_alive() || host_.draining() ||
                          client_framing_ == ClientFraming::until_close || !body_->done();
  ClientResponseParams params{ctx_->request_id, ctx_->extra_response_headers(), client_framing_,
                              close_after_response_, client_http10};
  const std::size_t head_size = write_client_response_head(response_, params, host_.scratch(), host_.scratch_size());
  if (head_size == 0) return fail(Error::upstream_bad_response, "response head too large");
  upstream_->consume(response_.head_bytes);
  phase_ = Phase::relaying;
  response_head_sent_ = true;  // from here on, a failure can only cut the connection
  relay_response_body(std::string_view(host_.scratch(), head_size));
}

// Sends `head` (if any) with the body bytes the upstream buffer holds, then continues.
void UpstreamExchange::relay_response_body(std::string_view head) {
  // While `head` is still to be written, nothing reached the client: a failure can still be a 502
  // (a reset with nothing before it told the client nothing, and was logged as the upstream's 200).
  const auto fail_before_anything_sent = [&](Error error, std::string_view detail) {
    if (!head.empty()) response_head_sent_ = false;
    return fail(error, detail);
  };
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
        if (r.error != Error::ok) return fail_before_anything_sent(Error::upstream_bad_response, "bad chunked framing");
        // Drop the framing bytes that were consumed: keep [payload) then whatever followed the message.
        const std::size_t rest = data.size() - r.consumed;
        std::memmove(out + payload, out + r.consumed, rest);
        upstream_->shrink_data(payload + rest);
        data = upstream_->data();
        take = payload;
        done = r.done;
      } else {
        const auto r = response_chunks_.scan(data);
        if (r.error != Error::ok) return fail_before_anything_sent(Error::upstream_bad_response, "bad chunked framing");
        take = r.consumed;
        done = r.done;
      }
      break;
    }
    case BodyFraming::until_close:
      take = data.size();
      done = upstream_->eof() && !upstream_->broken();  // a reset is no end of the body
      break;
  }
  bool truncated = false;
  if (!done && take == data.size() && upstream_->eof()) {
    // The upstream closed (or reset) in the middle of the body: the client must not take it as
    // complete (cut() resets the client's connection).
    ctx_->outcome = Error::upstream_reset;
    upstream_reusable_ = false;
    truncated = true;
    if (take == 0) {
      if (!head.empty()) return fail_before_anything_sent(Error::upstream_reset, "closed before the response body");
      return cut();
    }
  }
  if (take < data.size()) upstream_reusable_ = false;  // bytes beyond the response: desynchronised
  const std::string_view body = data.substr(0, take);
  upstream_->consume(take);
  ctx_->response_bytes += head.size() + body.size();
  send_client(head, body,
              done        ? &UpstreamExchange::response_done
              : truncated ? &UpstreamExchange::cut
                          : &UpstreamExchange::relay_more);
}

void UpstreamExchange::relay_more() {
  client_.set_deadline(snapshot().config.timeouts.upstream_response);
  if (!upstream_->data().empty() || upstream_->eof()) return relay_response_body({});
  upstream_->read();
}

void UpstreamExchange::send_client(std::string_view head, std::string_view body, Step next) {
  switch (client_.write_client(head, body)) {
    case ClientWrite::done: return (this->*next)();
    case ClientWrite::pending: after_client_write_ = next; return;
    case ClientWrite::failed: return;  // the session closed and aborted this exchange
  }
}

void UpstreamExchange::on_client_written() { (this->*after_client_write_)(); }

void UpstreamExchange::response_done() {
  release_upstream(upstream_reusable_);
  end({ExchangeEnd::Kind::complete, Error::ok, {}, close_after_response_});
}

void UpstreamExchange::fail(Error error, std::string_view detail) {
  ctx_->outcome = error;
  if (response_head_sent_) return cut();
  release_upstream(false);
  end({ExchangeEnd::Kind::failed, error, detail, !body_->done()});
}

void UpstreamExchange::cut() {
  release_upstream(false);
  end({ExchangeEnd::Kind::cut, ctx_->outcome, {}, true});
}

void UpstreamExchange::end(const ExchangeEnd& how) {
  release_slots();
  waiting_for_client_ = false;
  phase_ = Phase::idle;
  client_.exchange_done(how);  // may start the next request's exchange: nothing after this line
}

void UpstreamExchange::abort() noexcept {
  if (phase_ == Phase::idle) return;
  if (phase_ == Phase::tunneling) ++host_.counters()[Counter::tunnels_closed];  // the client closed it
  cancel_timer();
  release_upstream(false);
  release_slots();
  waiting_for_client_ = false;
  phase_ = Phase::idle;
}

void UpstreamExchange::release_slots() noexcept {
  if (holds_pending_ || connection_waiter_.waiting()) leave_connection_queue();
  if (connection_slot_) {
    connection_slot_ = false;
    if (auto* clusters = host_.clusters()) clusters->remove_connection(ctx_->manifest->index);
  }
}

void UpstreamExchange::release_upstream(bool reusable) noexcept {
  if (counted_inflight_) {
    counted_inflight_ = false;
    --host_.health().load(inflight_endpoint_).inflight;
  }
  if (upstream_ == nullptr) return;
  // A connection of a manifest under max_connections becomes free (idle, or its slot with it).
  if (ctx_->manifest->max_connections != 0) host_.wake_connection_queue(ctx_->manifest->index);
  upstream::UpstreamConnection* conn = upstream_;
  upstream_ = nullptr;
  if (reusable) {
    conn->pool().release(conn, snapshot().config.upstream_pool.max_idle_per_endpoint, host_.coarse_now());
  } else {
    conn->close();
  }
}

}  // namespace frontdoor::proxy
