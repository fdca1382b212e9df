// How a session ends: closing after a response (a linger when the client sent more, a close_notify
// over TLS), its deadlines, the drain, and closing for good (session.hpp).
#include "frontdoor/server/session.hpp"

#include <algorithm>

#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;
using stats::Counter;

namespace {

constexpr std::uint32_t kLingerBytes = 1 << 20;  // discarded after a closing reply, at most
constexpr auto kLingerTime = std::chrono::seconds(2);

}  // namespace

// Ends the connection after a response that went out whole. A client that sent more than was read
// (a body not read to its end, pipelined requests, bytes still in the kernel) is lingered over:
// closing over unread bytes makes the kernel reset the connection, and the reset drops the
// response's unsent tail (a slow reader of a large body lost megabytes). The kernel is asked (a
// peek: one receive) only when the client expected to keep the connection; one that asked for the
// close sends nothing after its request (RFC 9112 §9.6). Over TLS the end is always said with a
// close_notify (linger): without it a client cannot tell a body delimited by the close from one cut
// short, and strict ones (OpenSSL 3's defaults) fail every such response as truncated.
void Session::close_after_response() {
  if (client_.is_tls() || !body_.done() || begin_ != end_ || (request_.keep_alive() && client_.has_unread_bytes()))
    return linger();
  close_now();
}

// Half-close, then read and discard for a while so the reply is not destroyed by a reset
// (closing with unread data makes the kernel send RST). Over TLS the half-close is a close_notify,
// after which OpenSSL reads and drops what the client still sends, until its own close_notify or
// end of stream.
void Session::linger() {
  if (phase_ != Phase::lingering) {
    phase_ = Phase::lingering;
    linger_budget_ = kLingerBytes;
    tls_read_cancelled_ = false;
    if (!client_.is_tls()) client_.shutdown_send();
    deadline_ = worker_.coarse_now() + kLingerTime;
  }
  if (client_read_pending_) {
    // A read outstanding (a body's, a watch's): over TCP its completion lingers on; over TLS it is
    // cancelled, and its completion sends the close_notify (on_client_read). It waited for the
    // client instead, and the connection closed at the deadline without one.
    if (client_.is_tls() && !tls_read_cancelled_) {
      tls_read_cancelled_ = true;
      client_.cancel();
    }
    return;
  }
  if (client_.is_tls()) {
    client_read_pending_ = true;  // holds the session like a read (the shutdown reads, then writes)
    client_.async_tls_shutdown([this](const error_code&) {
      client_read_pending_ = false;
      if (phase_ == Phase::closed) return maybe_destroy();
      close_now();
    });
    return;
  }
  begin_ = end_ = 0;
  client_read_pending_ = true;
  client_.async_read_some(asio::buffer(buffer_.get(), capacity_), core::ReadStart::at_once,
                          [this](const error_code& ec, std::size_t n) { on_client_read(ec, n); });
}

// Plain HTTP to a TLS port (a client or health check configured with http://): answered in plain
// HTTP with a 400 that says so, as nginx does, instead of a silent close the client reports as
// "connection reset". The TLS stream is dropped (OpenSSL read the request's first bytes and they
// go with it) and the socket lingers as a plain one, so the rest of the request does not reset the
// answer away. Counted and logged as a request, like a malformed head.
void Session::answer_plain_http_on_tls_port() {
  client_.reset(std::move(client_.tcp()), nullptr);
  take_request(false);
  take_unreadable_head();
  ctx_.outcome = Error::bad_request;
  ctx_.status = error_info(Error::bad_request).status;
  const std::size_t size =
      proxy::write_local_reply(Error::bad_request, "plain HTTP sent to a TLS port: use https://", ctx_.request_id,
                               true, false, worker_.scratch(), worker_.scratch_size());
  error_code ignored;  // a fresh connection's send buffer takes the reply whole; else the client left
  ctx_.response_bytes += client_.try_write(std::string_view(worker_.scratch(), size), {}, ignored);
  finish_request();
  linger();
}

void Session::on_deadline(pipeline::Clock::time_point now) {
  switch (phase_) {
    case Phase::reading_proxy_header:  // no header in time: not from our balancer
      ++worker_.counters()[Counter::proxy_header_timeouts];
      return close_now();
    case Phase::reading_head:
      if (handshaking_) {
        ++worker_.counters()[Counter::tls_handshake_timeouts];
        return close_now();
      }
      if (!head_started_ || begin_ == end_) {
        // An idle keep-alive connection; or one that never began a request (counted: a flood of
        // silent connects shows here).
        if (awaiting_first_request_) ++worker_.counters()[Counter::silent_connections_closed];
        return close_now();
      }
      // Too slow to send a head (slowloris): a 408 counted and logged as a request, written at best
      // effort, no waiting on a slow reader.
      take_request(false);
      take_unreadable_head();
      ctx_.outcome = Error::client_timeout;
      ctx_.status = error_info(Error::client_timeout).status;
      if (client_.is_tls() && !client_write_pending_) {
        // TLS cannot be written at best effort (try_write): the 408 goes asynchronously, within a
        // linger's time, so a client that does not read cannot hold its slot. It was logged as a
        // 408 and never sent.
        reply(Error::client_timeout, {}, true);
        if (phase_ != Phase::closed) deadline_ = std::min(deadline_, worker_.coarse_now() + kLingerTime);
        return;
      }
      if (!client_write_pending_) {
        const std::size_t size = proxy::write_local_reply(Error::client_timeout, {}, ctx_.request_id, true, false,
                                                          worker_.scratch(), worker_.scratch_size());
        error_code ignored;
        ctx_.response_bytes += client_.try_write(std::string_view(worker_.scratch(), size), {}, ignored);
      }
      finish_request();
      return close_now();
    case Phase::limiting:
      ctx_.lease_waiter.unlink();
      cancel_hold();
      ctx_.retry_after_seconds = 1;
      return reply(Error::rate_limit_unavailable, {}, !body_.done());
    case Phase::continuing:
      // The client does not read our 100 Continue: nothing more can be written to it.
      ctx_.outcome = Error::client_timeout;
      return close_now();
    case Phase::proxying: return exchange_.on_deadline(now, now >= request_deadline_, client_write_pending_);
    case Phase::replying:
    case Phase::lingering: return close_now();
    case Phase::closed: return;
  }
}

void Session::drain() noexcept {
  // Idle, or no request begun yet (a PROXY header or a TLS handshake still coming held the drain
  // up to client_header).
  if (phase_ == Phase::reading_proxy_header || (phase_ == Phase::reading_head && (!head_started_ || begin_ == end_)))
    close_now();
  // Otherwise the response carries Connection: close and the session ends after it.
}

void Session::close_now() noexcept {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  worker_.mark_busy(this);
  ctx_.lease_waiter.unlink();
  cancel_hold();
  const bool tunnel = exchange_.tunneling();  // a tunnel's client closing it is its normal end
  exchange_.abort();
  if (request_active_) {
    if (ctx_.outcome == Error::ok && !tunnel) ctx_.outcome = Error::client_closed;
    finish_request();
  }
  client_.close();
  client_slot_.reset();
  deadline_ = pipeline::Clock::time_point::max();
  maybe_destroy();
}

void Session::maybe_destroy() noexcept {
  if (phase_ == Phase::closed && !client_read_pending_ && !client_write_pending_ && holds_pending_ == 0 &&
      !exchange_.busy()) {
    snapshot_.reset();
    worker_.return_client_buffer(std::move(buffer_));
    worker_.session_closed(this);  // may recycle `this`: nothing after this line
  }
}

}  // namespace frontdoor::server
