// UpstreamExchange, after the upstream's 101: the tunnel (proxy/exchange.hpp).
#include "frontdoor/proxy/exchange.hpp"

namespace frontdoor::proxy {

using stats::Counter;

void UpstreamExchange::start_tunnel() {
  ++holds_;  // both directions start here, and either may end the exchange: `this` must outlive it
  ctx_->status = 101;
  ClientResponseParams params{ctx_->request_id, ctx_->extra_response_headers(), ClientFraming::none, false, false,
                              true};
  const std::size_t head_size = write_client_response_head(response_, params, host_.scratch(), host_.scratch_size());
  if (head_size == 0) {
    fail(Error::upstream_bad_response, "response head too large");
  } else {
    upstream_->consume(response_.head_bytes);
    phase_ = Phase::tunneling;
    response_head_sent_ = true;
    ++host_.counters()[Counter::tunnels_opened];
    client_.tunnel_started();
    set_tunnel_deadline();
    tunnel_up();  // what the client sent already (the first frames), then a read for more
    if (phase_ == Phase::tunneling) {
      // The 101 goes with whatever the upstream sent after it.
      const std::string_view data = upstream_->data();
      down_bytes_ = data.size();
      down_busy_ = true;
      ctx_->response_bytes += head_size + data.size();
      send_client(std::string_view(host_.scratch(), head_size), data, &UpstreamExchange::tunnel_down_sent);
    }
  }
  if (--holds_ == 0 && phase_ == Phase::idle) client_.exchange_released();  // may free `this`
}

void UpstreamExchange::tunnel_down() {
  if (down_busy_) return;  // its completion continues
  const std::string_view data = upstream_->data();
  if (data.empty()) {
    if (!upstream_->eof()) return upstream_->read();
    // The upstream said "no more output": so is the client told, and what the client still sends
    // goes on upstream until it is done too. Ending here cut the client's last bytes off.
    if (client_finished_ || upstream_->broken() || upstream_finished_ || !client_.finish_client_side())
      return end_tunnel();
    upstream_finished_ = true;
    set_tunnel_deadline();
    return;
  }
  down_bytes_ = data.size();
  down_busy_ = true;
  ctx_->response_bytes += data.size();
  send_client({}, data, &UpstreamExchange::tunnel_down_sent);
}

void UpstreamExchange::tunnel_down_sent() {
  upstream_->consume(down_bytes_);
  down_busy_ = false;
  set_tunnel_deadline();
  tunnel_down();
}

void UpstreamExchange::tunnel_up() {
  const std::string_view data = client_.client_data();
  if (data.empty()) {
    waiting_for_client_ = true;
    client_.read_client_body();
    set_tunnel_deadline();
    return;
  }
  up_bytes_ = data.size();
  send_upstream({}, data, &UpstreamExchange::tunnel_up_sent);
}

void UpstreamExchange::tunnel_up_sent() {
  client_.consume_client_data(up_bytes_);  // only now: the write read them from the client's buffer
  ctx_->request_body_bytes += up_bytes_;
  up_bytes_ = 0;
  set_tunnel_deadline();
  tunnel_up();
}

// The client half-closed (shutdown(SHUT_WR): "no more input", as Docker's attach and many
// WebSocket-less upgrades use it): everything it sent is upstream already (tunnel_up reads only
// then), so the upstream is told the same, and its answer keeps coming until it closes or the
// tunnel idles. Tearing both down here lost that answer.
void UpstreamExchange::on_client_finished() {
  waiting_for_client_ = false;
  if (upstream_finished_) return end_tunnel();  // both sides are done
  client_finished_ = true;
  boost::system::error_code ignored;
  upstream_->socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
  set_tunnel_deadline();
}

void UpstreamExchange::set_tunnel_deadline() {
  const auto& timeouts = snapshot().config.timeouts;
  client_.set_deadline(client_finished_ ? timeouts.upstream_response : timeouts.tunnel_idle);
}

// The upstream closed (or both sides half-closed), or the tunnel idled: the client connection
// closes after what was relayed.
void UpstreamExchange::end_tunnel() {
  ++host_.counters()[Counter::tunnels_closed];
  release_upstream(false);
  end({ExchangeEnd::Kind::complete, Error::ok, {}, true});
}

}  // namespace frontdoor::proxy
