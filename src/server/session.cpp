#include "frontdoor/server/session.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cstring>
#include <spdlog/spdlog.h>

#include "frontdoor/core/network.hpp"
#include "frontdoor/core/partial_write.hpp"
#include "frontdoor/http/path.hpp"
#include "frontdoor/server/client_address.hpp"
#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;
using stats::Counter;

namespace {

constexpr std::uint8_t kMaxRecursion = 8;  // pipelined requests handled inline before yielding

}  // namespace

Session::Session(Worker& worker)
    : worker_(worker), client_(worker.io()), exchange_(worker, *this), hold_timer_(worker.io()) {
  ctx_.lease_waiter.owner = this;
  ctx_.lease_waiter.wake = &Session::resume_pipeline;
  log_method_.reserve(16);
  log_target_.reserve(256);
}

void Session::attach(const ListenerInfo& listener) {
  listener_ = &listener;
  snapshot_ = worker_.snapshot();
  buffer_ = worker_.take_client_buffer();
  capacity_ = worker_.client_buffer_bytes_;
  begin_ = end_ = 0;
  request_.headers = &request_headers_;
  const auto max_headers = snapshot_->config.limits.max_header_count;
  if (request_headers_.capacity() < max_headers) request_headers_.reserve(max_headers);
  ctx_.default_environment = listener.default_environment;
  ctx_.allowed_environments = listener.environments;
  request_deadline_ = pipeline::Clock::time_point::max();
  deadline_ = pipeline::Clock::time_point::max();
  watch_at_ = pipeline::Clock::time_point::max();
  head_started_ = false;
  phase_ = Phase::reading_head;
  request_scanner_.reset();
  spill_.clear();
  client_write_pending_ = client_read_pending_ = false;
  recursion_ = 0;
}

void Session::resume(asio::ip::tcp::socket socket, core::DrainAwareReader reader, const ListenerInfo& listener,
                     const asio::ip::address& peer, std::string_view peer_text, std::string_view first_bytes,
                     ClientConnectionCounts::Slot client_slot) {
  client_.reset(std::move(socket), nullptr, reader);
  client_slot_ = std::move(client_slot);
  awaiting_first_request_ = false;
  attach(listener);
  peer_address_ = peer;
  std::memcpy(peer_ip_.data(), peer_text.data(), peer_text.size());
  ctx_.peer_ip = ctx_.client_ip = std::string_view(peer_ip_.data(), peer_text.size());
  ctx_.client_address = peer;
  std::memcpy(buffer_.get(), first_bytes.data(), first_bytes.size());
  end_ = static_cast<std::uint32_t>(first_bytes.size());
  start_head_clock();
  if (!parse_request()) read_client();
}

// A keep-alive connection with nothing buffered waits for its next request without this session:
// plain TCP only (a TLS stream keeps its session), and only with nothing of this session in flight.
bool Session::can_park() const noexcept {
  return !client_.is_tls() && begin_ == end_ && !client_read_pending_ && !client_write_pending_ &&
         holds_pending_ == 0 && !exchange_.busy() && !request_active_ && !worker_.draining();
}

void Session::park() {
  phase_ = Phase::closed;  // the connection lives on in the worker's parked list
  worker_.mark_busy(this);
  worker_.park(client_.release_tcp(), client_.reader(), *listener_, peer_address_, ctx_.peer_ip, std::move(client_slot_));
  snapshot_.reset();
  worker_.return_client_buffer(std::move(buffer_));
  worker_.session_parked(this);  // may recycle `this`: nothing after this line
}

void Session::start(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& peer, const ListenerInfo& listener,
                    ClientConnectionCounts::Slot client_slot) {
  client_.reset(std::move(socket), listener.tls_context.get());
  client_slot_ = std::move(client_slot);
  awaiting_first_request_ = true;
  attach(listener);
  set_peer(peer.address());
  just_accepted_ = !listener.proxy_protocol && listener.tls_context == nullptr;
  if (listener.proxy_protocol) {
    // The header counts against the header timeout, like the head it precedes.
    phase_ = Phase::reading_proxy_header;
    set_deadline(snapshot_->config.timeouts.client_header);
    proxy_header_taken_ = 0;
    worker_.mark_idle(this);  // reclaimable until its header is in, like a TLS handshake
    return read_proxy_header(false);
  }
  begin_connection();
}

void Session::set_peer(const boost::asio::ip::address& address) noexcept {
  peer_address_ = address;
  const std::size_t n = format_address(address, peer_ip_.data(), peer_ip_.size());
  ctx_.peer_ip = ctx_.client_ip = std::string_view(peer_ip_.data(), n);
  ctx_.client_address = address;
}

void Session::begin_connection() {
  if (client_.is_tls()) {
    // The handshake counts against the header timeout, like the head it precedes. Until it is done
    // the connection is as reclaimable as an idle one: silent connects to a TLS port must not hold
    // max_connections against everyone until the timeout.
    set_deadline(snapshot_->config.timeouts.client_header);
    worker_.mark_idle(this);
    client_read_pending_ = true;
    handshaking_ = true;
    client_.async_handshake([this](const error_code& ec) {
      client_read_pending_ = false;
      handshaking_ = false;
      worker_.mark_busy(this);
      if (phase_ == Phase::closed) return maybe_destroy();
      if (ec) {
        // Counted by cause: plain HTTP to this port (a misconfigured health check or client), the
        // client leaving, or a real failure (versions, ciphers, a certificate it refused).
        const bool plain_http = ec.category() == asio::error::get_ssl_category() &&
                                ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST;
        const bool closed = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
                            ec == asio::error::connection_reset;
        ++worker_.counters()[plain_http ? Counter::tls_handshake_plain_http
                             : closed   ? Counter::tls_handshake_closed
                                        : Counter::tls_handshake_failed];
        spdlog::debug("TLS handshake from {}: {}", ctx_.client_ip, ec.message());
        if (plain_http) return answer_plain_http_on_tls_port();
        return close_now();
      }
      read_client();
    });
    return;
  }
  read_client();
}

// ---------------------------------------------------------------------------------------------
// Reading requests

void Session::set_deadline(pipeline::Clock::duration timeout) noexcept {
  deadline_ = std::min(worker_.coarse_now() + timeout, request_deadline_);
}

void Session::read_client() {
  const auto& timeouts = snapshot_->config.timeouts;
  if (client_read_pending_) {
    // A read armed to watch for a hang-up is still outstanding: it is this read. The buffer must not
    // move under it. Between requests the connection is idle all the same: reclaimable when the
    // process is full (a slow request must not pin its connection's slot for client_idle).
    if (phase_ == Phase::reading_head) {
      set_deadline(head_started_ || awaiting_first_request_ ? timeouts.client_header : timeouts.client_idle);
      if (!head_started_) worker_.mark_idle(this);
    } else if (phase_ == Phase::proxying) {
      set_deadline(timeouts.client_body);
    }
    return;
  }
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
  // The header timeout runs from the head's first byte, however slowly the rest trickles in.
  if (phase_ == Phase::reading_head) {
    if (head_started_) {
      deadline_ = head_deadline_;
    } else {
      // A new connection has client_header for its first request, as a TLS handshake has: a silent
      // connect is not a keep-alive client, and must not hold its slot for client_idle.
      set_deadline(awaiting_first_request_ ? timeouts.client_header : timeouts.client_idle);
      worker_.mark_idle(this);  // between requests: the first to go when the process is full
    }
  } else if (phase_ == Phase::proxying) {
    set_deadline(timeouts.client_body);  // the exchange waits for more of the body
  }
  // Only a read for a new request may wait for the socket's next edge (core/drain_aware_reader.hpp).
  const bool new_request = phase_ == Phase::reading_head && !head_started_;
  const auto start = just_accepted_ ? core::ReadStart::first
                     : new_request  ? core::ReadStart::on_readiness
                                    : core::ReadStart::at_once;
  just_accepted_ = false;
  client_read_pending_ = true;
  client_.async_read_some(asio::buffer(buffer_.get() + end_, capacity_ - end_), start,
                          [this](const error_code& ec, std::size_t n) { on_client_read(ec, n); });
}

void Session::on_client_read(const error_code& ec, std::size_t n) {
  client_read_pending_ = false;
  worker_.mark_busy(this);
  if (phase_ == Phase::closed) return maybe_destroy();
  end_ += static_cast<std::uint32_t>(n);
  worker_.counters()[Counter::bytes_from_clients] += n;
  if (phase_ == Phase::lingering) {
    begin_ = end_ = 0;
    if (ec == asio::error::operation_aborted && tls_read_cancelled_) return linger();  // now the close_notify
    if (ec || n >= linger_budget_) return close_now();
    linger_budget_ -= static_cast<std::uint32_t>(n);
    return linger();
  }
  if (ec == asio::error::eof && exchange_.tunneling() && exchange_.waiting_for_client())
    return exchange_.on_client_finished();  // a half-close: the upstream's answer still comes
  if (ec) {
    // The client went away: while the request waited (a watch read), or mid-body. Its upstream
    // request is cancelled; the breakers are not told (client_closed is the client's doing).
    if (request_active_ && ctx_.outcome == Error::ok && !exchange_.tunneling()) ctx_.outcome = Error::client_closed;
    return close_now();
  }
  if (phase_ == Phase::reading_head) {
    if (!head_started_) start_head_clock();
    if (!parse_request()) read_client();
    return;
  }
  if (phase_ == Phase::proxying && exchange_.waiting_for_client()) return exchange_.on_client_data();
  // Otherwise a watch read brought bytes of a pipelined next request: they wait in the buffer.
}

void Session::watch_client() noexcept {
  watch_at_ = pipeline::Clock::time_point::max();
  const bool waiting = phase_ == Phase::limiting || (phase_ == Phase::proxying && body_.done());
  if (!waiting || client_read_pending_ || end_ == capacity_) return;
  client_read_pending_ = true;
  // The request is whole: this read waits for pipelined bytes or the client leaving, like an idle one.
  client_.async_read_some(asio::buffer(buffer_.get() + end_, capacity_ - end_), core::ReadStart::on_readiness,
                          [this](const error_code& ec, std::size_t n) { on_client_read(ec, n); });
}

// A tunnel lives as long as its two peers want: it is not held to request_total, and it leaves the
// requests in flight that load shedding and max_requests count (a thousand idle WebSockets are not
// an overload); its endpoint's breaker learns of the 101 now, not when the tunnel closes.
void Session::tunnel_started() noexcept {
  request_deadline_ = pipeline::Clock::time_point::max();
  if (counted_in_flight_) --worker_.load().inflight;
  counted_in_flight_ = false;
  ctx_.now = worker_.now();
  worker_.pipeline().stage<pipeline::BreakerStage>().on_tunnel(ctx_);
}

bool Session::finish_client_side() noexcept {
  if (client_.is_tls()) return false;  // a close_notify would end the whole TLS session
  client_.shutdown_send();
  return true;
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
  if (worker_.draining()) return close_after_response();
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
  if (can_park()) return park();
  read_client();
}

// Returns true when the request was taken on (proxied or answered); false when more bytes are needed.
bool Session::parse_request() {
  Error error = Error::ok;
  const auto status =
      http::parse_request_head(client_data(), snapshot_->request_limits, request_scanner_, request_, error);
  if (status == http::ParseStatus::incomplete) return false;
  take_request(status == http::ParseStatus::complete);
  if (status == http::ParseStatus::error) {
    take_unreadable_head();
    reply(error, {}, true);
    return true;
  }
  begin_request();
  return true;
}

// A request begins: counted, timed, in flight (finish_request ends it).
void Session::take_request(bool head_parsed) {
  awaiting_first_request_ = false;
  ctx_.reset();
  ctx_.snapshot = snapshot_.get();
  ctx_.request = &request_;
  identify_client(head_parsed);
  ctx_.started = ctx_.now = worker_.now();
  const auto total = snapshot_->config.timeouts.request_total;
  request_deadline_ = total.count() > 0 ? ctx_.started + total : pipeline::Clock::time_point::max();
  ++worker_.counters()[Counter::requests];
  request_active_ = true;
  counted_in_flight_ = true;
  ++worker_.load().inflight;
}

// ...from a head that could not be read (malformed, or too slow): answered, logged and closed.
void Session::take_unreadable_head() {
  method_ = stats::RequestTally::method_index({});  // "other": the head could not be read
  request_.is_head = false;
  request_.connection.close = true;
  ctx_.request_id = worker_.request_ids().next();
  std::memcpy(request_id_.data(), ctx_.request_id.data(), ctx_.request_id.size());
  ctx_.request_id = std::string_view(request_id_.data(), ctx_.request_id.size());
  log_method_.clear();
  log_target_.clear();
  body_.distrust();  // the stream cannot be trusted past a bad head
}

// The client of this request: the peer, unless a trusted proxy (the listener's trusted_proxies) names
// another in X-Forwarded-For.
void Session::identify_client(bool head_parsed) noexcept {
  const auto client = head_parsed ? client_address(peer_address_, request_headers_, listener_->trusted_proxies)
                                  : peer_address_;
  ctx_.client_address = client;
  ctx_.peer_trusted = !listener_->trusted_proxies.empty() && listener_->trusted_proxies.contains(peer_address_);
  if (client == peer_address_) {
    ctx_.client_ip = ctx_.peer_ip;
    return;
  }
  ctx_.client_ip = std::string_view(client_ip_.data(), format_address(client, client_ip_.data(), client_ip_.size()));
}

void Session::begin_request() {
  // The head is handed on: what follows it is body or the next request. Its bytes stay where they
  // are (and the views into them valid) until the next read into the buffer — which, for a request
  // without a body, comes only after its response: a retry sends the same head again.
  begin_ += request_.head_bytes;
  method_ = stats::RequestTally::method_index(request_.method);
  const std::string_view id = request_.request_id.empty() ? worker_.request_ids().next() : request_.request_id;
  std::memcpy(request_id_.data(), id.data(), id.size());
  ctx_.request_id = std::string_view(request_id_.data(), id.size());
  if (worker_.access_log().enabled()) {
    log_method_.assign(request_.method);
    log_target_.assign(request_.target.substr(0, 1024));
  }
  const auto& limits = snapshot_->config.limits;
  body_.start(request_.framing, request_.content_length, limits.max_body_bytes, limits.max_header_bytes);
  if (limits.max_body_bytes != 0 && request_.framing == http::BodyFraming::content_length &&
      request_.content_length > limits.max_body_bytes)
    return reply(Error::body_too_large, {}, true);
  if (!normalize_target()) return;
  run_pipeline();
}

// Routing, the limits and the upstream all read the normalised path (http/path.hpp); false when the
// target was refused (400, naming what is wrong).
bool Session::normalize_target() {
  const auto normalized = http::normalize_path(request_.target, normalized_target_);
  switch (normalized.verdict) {
    case http::NormalizedPath::Verdict::unchanged: return true;
    case http::NormalizedPath::Verdict::rewritten:
      request_.target = normalized.target;
      return true;
    case http::NormalizedPath::Verdict::invalid: break;
  }
  reply(Error::bad_request, normalized.why, true);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Writes and outcomes

proxy::ClientWrite Session::write_client(std::string_view head, std::string_view body) {
  if (client_write_pending_) {
    // Two writes in flight would interleave their bytes on the stream: never let it happen.
    spdlog::error("client {}: a write was started while another is in flight; closing the connection",
                  ctx_.client_ip);
    if (ctx_.outcome == Error::ok) ctx_.outcome = Error::internal;
    close_now();
    return proxy::ClientWrite::failed;
  }
  error_code ec;
  const std::size_t n = client_.try_write(head, body, ec);
  worker_.counters()[Counter::bytes_to_clients] += n;
  if (!ec && n == head.size() + body.size()) return proxy::ClientWrite::done;
  if (ec && ec != asio::error::would_block) {
    if (ctx_.outcome == Error::ok) ctx_.outcome = Error::client_closed;
    close_now();
    return proxy::ClientWrite::failed;
  }
  body = core::keep_unsent(spill_, head, body, n);
  client_write_pending_ = true;
  set_deadline(snapshot_->config.timeouts.client_idle);
  client_.async_write(spill_, body, [this](const error_code& ec, std::size_t written) {
    worker_.counters()[Counter::bytes_to_clients] += written;
    on_client_written(ec);
  });
  return proxy::ClientWrite::pending;
}

void Session::on_client_written(const error_code& ec) {
  client_write_pending_ = false;
  if (phase_ == Phase::closed) return maybe_destroy();
  if (ec) {
    if (ctx_.outcome == Error::ok) ctx_.outcome = Error::client_closed;
    return close_now();
  }
  switch (phase_) {
    case Phase::continuing: return start_exchange();
    case Phase::proxying: return exchange_.on_client_written();
    case Phase::replying: return reply_done();
    default: return;
  }
}

void Session::reply(Error error, std::string_view detail, bool close) {
  phase_ = Phase::replying;
  if (ctx_.outcome == Error::ok) ctx_.outcome = error;
  const auto& info = error_info(error);
  ctx_.status = info.status;
  close_after_reply_ = close || worker_.draining() || !request_.keep_alive();
  const bool head_only = request_.is_head && error != Error::bad_request;
  const std::size_t size =
      proxy::write_local_reply(error, detail, ctx_.request_id, close_after_reply_, head_only, worker_.scratch(),
                               worker_.scratch_size(), ctx_.retry_after_seconds, ctx_.extra_response_headers());
  ctx_.response_bytes += size;
  set_deadline(snapshot_->config.timeouts.client_idle);
  if (write_client(std::string_view(worker_.scratch(), size), {}) == proxy::ClientWrite::done) reply_done();
}

void Session::reply_done() {
  finish_request();
  if (!close_after_reply_) return next_request();
  linger();
}

void Session::finish_request() {
  watch_at_ = pipeline::Clock::time_point::max();
  if (!request_active_) return;
  request_active_ = false;
  if (counted_in_flight_) --worker_.load().inflight;
  counted_in_flight_ = false;
  auto& counters = worker_.counters();
  counters.responses_by_class[std::min<unsigned>(ctx_.status / 100, 5)]++;
  counters.errors[static_cast<std::size_t>(ctx_.outcome)]++;
  ctx_.now = worker_.now();
  // A tunnel's request lasted until its 101: the tunnel's own life (minutes of a WebSocket) in the
  // latency histogram would push every quantile of its route to +Inf.
  const bool tunnel = ctx_.status == 101 && ctx_.response_started != pipeline::Clock::time_point{};
  worker_.requests().record(method_, ctx_.manifest != nullptr ? ctx_.manifest->route : 0, ctx_.status,
                            std::chrono::duration<double>((tunnel ? ctx_.response_started : ctx_.now) - ctx_.started)
                                .count());
  worker_.pipeline().on_complete(ctx_);
  if (worker_.access_log().enabled()) {
    worker_.access_log().write(AccessRecord{ctx_, log_method_, log_target_,
                                            ctx_.endpoint != nullptr ? std::string_view(ctx_.endpoint->name)
                                                                     : std::string_view(),
                                            worker_.now()});
  }
}

}  // namespace frontdoor::server
