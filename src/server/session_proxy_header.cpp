// A session's PROXY protocol header (listeners with proxy_protocol: true), read before anything
// else on the connection. Once per connection, off the request path.
#include <spdlog/spdlog.h>

#include "frontdoor/http/proxy_protocol.hpp"
#include "frontdoor/server/session.hpp"
#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;
using stats::Counter;

// The PROXY header is peeked, never read past: what follows it (a TLS handshake, a request) stays in
// the socket for the stream that reads it next. A partial header is taken out of the socket (all of
// it is header) and the rest peeked after it once more bytes arrive: left in the socket, it would
// keep the socket readable and the wait for more would spin until the header timeout.
void Session::read_proxy_header(bool wait_for_more) {
  client_read_pending_ = true;
  const std::size_t room = std::min<std::size_t>(capacity_, http::kMaxProxyV2Bytes) - proxy_header_taken_;
  const auto peek = asio::buffer(buffer_.get() + proxy_header_taken_, room);
  if (!wait_for_more) {
    client_.tcp().async_receive(peek, asio::socket_base::message_peek, [this](const error_code& ec, std::size_t n) {
      client_read_pending_ = false;
      if (phase_ == Phase::closed) return maybe_destroy();
      if (ec) return close_now();
      on_proxy_header(n);
    });
    return;
  }
  client_.tcp().async_wait(asio::socket_base::wait_read, [this, peek](const error_code& ec) {
    client_read_pending_ = false;
    if (phase_ == Phase::closed) return maybe_destroy();
    error_code peek_ec;
    const std::size_t n = ec ? 0 : client_.tcp().receive(peek, asio::socket_base::message_peek, peek_ec);
    // A readiness event from before the bytes were taken can end the wait with nothing new: wait again.
    if (!ec && peek_ec == asio::error::would_block) return read_proxy_header(true);
    if (ec || peek_ec) return close_now();
    on_proxy_header(n);
  });
}

void Session::on_proxy_header(std::size_t peeked) {
  http::ProxyHeader header;
  const std::size_t have = proxy_header_taken_ + peeked;
  switch (http::parse_proxy_header(std::string_view(buffer_.get(), have), header)) {
    case http::ProxyHeaderStatus::incomplete:
      if (have < std::min<std::size_t>(capacity_, http::kMaxProxyV2Bytes)) {
        error_code ec;
        const std::size_t taken = client_.tcp().receive(asio::buffer(buffer_.get() + proxy_header_taken_, peeked), 0, ec);
        if (ec || taken != peeked) return close_now();
        proxy_header_taken_ += static_cast<std::uint32_t>(taken);
        return read_proxy_header(true);
      }
      [[fallthrough]];
    case http::ProxyHeaderStatus::error:
      // Not from the balancer this listener expects (or it speaks something else): no request to answer.
      ++worker_.counters()[Counter::proxy_protocol_errors];
      spdlog::debug("listener {}: connection from {} without a valid PROXY protocol header", listener_->name,
                    ctx_.peer_ip);
      return close_now();
    case http::ProxyHeaderStatus::complete: break;
  }
  error_code ec;
  const std::size_t rest = header.bytes - proxy_header_taken_;
  const std::size_t consumed = client_.tcp().receive(asio::buffer(buffer_.get() + proxy_header_taken_, rest), 0, ec);
  if (ec || consumed != rest) return close_now();
  if (!header.local) set_peer(header.source);
  // The client is known now (the balancer's own health checks, LOCAL, count as the balancer).
  if (!worker_.take_client_slot(*listener_, peer_address_, client_slot_)) return close_now();
  worker_.mark_busy(this);
  phase_ = Phase::reading_head;
  begin_connection();
}

}  // namespace frontdoor::server
