#pragma once
// Session: the client side of one connection on one worker — the keep-alive loop, reading heads
// (limits and smuggling checks through the strict parser), the pipeline, interim and local replies,
// and lingering before a close. The way to the upstream and back is its UpstreamExchange
// (proxy/exchange.hpp); the session serves it the client's bytes and writes.
//
// A request's phases, in order: reading_head → limiting (a hold or a wait for Redis) → continuing
// (our own 100 Continue is being written) → proxying (the exchange) → replying (a local reply) or
// back to reading_head; lingering and closed at the end of the connection.
//
// Writes: at most one in flight on the client stream, checked (a second one closes the connection
// and is logged, it never interleaves bytes). They are tried synchronously first and only fall back
// to an asynchronous write when the kernel's buffer is full; the unsent part of a head (scratch
// space) is copied to spill_.
//
// Timeouts are coarse deadlines checked by the worker's 100 ms tick, not a timer per operation.
// Lifetime: owned by the worker (recycled); freed when closed and no operation is outstanding.
// Worker thread only.
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/http/body_cursor.hpp"
#include "frontdoor/http/message_head.hpp"
#include "frontdoor/pipeline/request_context.hpp"
#include "frontdoor/proxy/exchange.hpp"
#include "frontdoor/server/client_connection_counts.hpp"
#include "frontdoor/server/client_stream.hpp"

namespace frontdoor::server {

class Worker;
struct ListenerInfo;

class Session final : private proxy::ClientSide {
 public:
  explicit Session(Worker& worker);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // `client_slot`: the connection's place in its client's count (server.max_connections_per_client),
  // empty when not capped or (PROXY protocol) taken once the header names the client.
  void start(boost::asio::ip::tcp::socket socket, const boost::asio::ip::tcp::endpoint& peer,
             const ListenerInfo& listener, ClientConnectionCounts::Slot client_slot);
  // A parked keep-alive connection (IdleConnection) whose next request began: `first_bytes` of it
  // were read already, through `reader`.
  void resume(boost::asio::ip::tcp::socket socket, core::DrainAwareReader reader, const ListenerInfo& listener,
              const boost::asio::ip::address& peer, std::string_view peer_text, std::string_view first_bytes,
              ClientConnectionCounts::Slot client_slot);

  // Called by the worker's tick when `deadline()` has passed.
  void on_deadline(pipeline::Clock::time_point now);
  pipeline::Clock::time_point deadline() const noexcept { return deadline_; }
  // Called by the worker's tick when `watch_at()` has passed: a request that has waited that long
  // (for a rate limit, a connection slot, the upstream) gets a read armed on its client, so a client
  // that hangs up is noticed and its upstream request cancelled. Not on the fast path: a request
  // answered sooner costs no extra read.
  void watch_client() noexcept;
  pipeline::Clock::time_point watch_at() const noexcept { return watch_at_; }
  // Draining: close now if idle between requests; otherwise close after the current response.
  void drain() noexcept;
  void force_close() noexcept { close_now(); }
  // An upgraded connection (WebSocket) relaying both ways.
  bool tunneling() const noexcept { return exchange_.tunneling(); }

 private:
  enum class Phase : std::uint8_t {
    reading_proxy_header,  // a PROXY protocol listener: the header naming the client comes first
    reading_head,  // waiting for (the rest of) a request head
    limiting,      // a global rate limit waits for Redis, or a leaky bucket holds the request
    continuing,    // our 100 Continue is being written; the exchange starts once it is out
    proxying,      // the exchange has the request
    replying,      // a local reply is being written
    lingering,     // reply written before close: discarding what the client still sends
    closed,
  };

  // The connection's start, and its pauses.
  void attach(const ListenerInfo& listener);
  bool can_park() const noexcept;
  void park();
  void read_proxy_header(bool wait_for_more);
  void on_proxy_header(std::size_t peeked);
  void begin_connection();
  void set_peer(const boost::asio::ip::address& address) noexcept;
  // Reading requests.
  void read_client();
  void on_client_read(const boost::system::error_code& ec, std::size_t n);
  void next_request();
  void start_head_clock();
  bool parse_request();
  void identify_client(bool head_parsed) noexcept;
  void begin_request();
  // The pipeline, then the exchange.
  void run_pipeline();
  static void resume_pipeline(Waiter& waiter);
  void resume_after_hold();
  void start_hold(pipeline::Clock::duration delay);
  void cancel_hold() noexcept;
  void start_upstream();
  void start_exchange();
  // Outcomes.
  bool normalize_target();
  void take_request(bool head_parsed);
  void take_unreadable_head();
  void reply(Error error, std::string_view detail, bool close);
  void reply_done();
  void finish_request();
  void linger();
  void close_after_response();
  void answer_plain_http_on_tls_port();
  void close_now() noexcept;
  void maybe_destroy() noexcept;
  void on_client_written(const boost::system::error_code& ec);

  // proxy::ClientSide
  std::string_view client_data() const noexcept override { return {buffer_.get() + begin_, end_ - begin_}; }
  void consume_client_data(std::size_t n) noexcept override { begin_ += static_cast<std::uint32_t>(n); }
  void read_client_body() override { read_client(); }
  proxy::ClientWrite write_client(std::string_view head, std::string_view body) override;
  void set_deadline(pipeline::Clock::duration timeout) noexcept override;
  void cap_deadline(pipeline::Clock::time_point at) noexcept override { deadline_ = std::min(deadline_, at); }
  void exchange_done(const proxy::ExchangeEnd& end) override;
  void exchange_released() noexcept override;
  void tunnel_started() noexcept override;
  void request_sent() noexcept override;
  bool finish_client_side() noexcept override;

  Worker& worker_;
  ClientStream client_;
  proxy::UpstreamExchange exchange_;
  boost::asio::steady_timer hold_timer_;  // armed only while a leaky-bucket limit holds the request
  const ListenerInfo* listener_ = nullptr;
  std::shared_ptr<const snapshot::Snapshot> snapshot_;  // pinned for the request in flight
  Phase phase_ = Phase::closed;

  // Client buffer: [begin_, end_) holds received bytes not yet handed on.
  std::unique_ptr<char[]> buffer_;
  std::uint32_t capacity_ = 0;
  std::uint32_t begin_ = 0;
  std::uint32_t end_ = 0;

  // The request in flight.
  http::RequestHead request_;
  std::vector<http::Header> request_headers_;
  http::HeadScanner request_scanner_;
  http::BodyCursor body_;
  bool head_started_ = false;    // some bytes of the next head have arrived
  bool request_active_ = false;  // parsed and not yet finished (counted, logged)
  bool counted_in_flight_ = false;  // in the worker's load (load shedding): a request, not a tunnel
  bool just_accepted_ = false;      // plain TCP, nothing read yet: the first read is ReadStart::first
  bool handshaking_ = false;  // a TLS handshake is in progress
  bool awaiting_first_request_ = false;  // no head parsed on this connection yet: client_header bounds the wait
  bool close_after_reply_ = false;
  std::uint8_t method_ = 0;  // RequestTally::method_index of the request in flight
  pipeline::RequestContext ctx_;
  std::array<char, 128> request_id_{};
  boost::asio::ip::address peer_address_;  // after a PROXY protocol header, the address it named
  ClientConnectionCounts::Slot client_slot_;  // given back when the connection closes
  std::array<char, 46> peer_ip_{};
  std::array<char, 46> client_ip_{};      // this request's client, when a trusted proxy named another
  // Copies for the access log: the head's bytes are overwritten while the body streams.
  std::string log_method_;
  std::string log_target_;
  // The request's target when normalising its path changed it (http/path.hpp); sized on first use.
  std::string normalized_target_;

  // Client I/O.
  std::string spill_;  // the unsent part of a head whose write blocked
  bool client_write_pending_ = false;
  bool client_read_pending_ = false;
  std::uint32_t holds_pending_ = 0;    // hold_timer_ waits not completed yet
  std::uint32_t hold_generation_ = 0;  // of the newest wait; older ones do nothing

  pipeline::Clock::time_point deadline_{};
  pipeline::Clock::time_point watch_at_ = pipeline::Clock::time_point::max();
  pipeline::Clock::time_point head_deadline_{};
  pipeline::Clock::time_point request_deadline_ = pipeline::Clock::time_point::max();
  std::uint32_t linger_budget_ = 0;
  bool tls_read_cancelled_ = false;  // lingering over TLS: the outstanding read was cancelled for the close_notify
  std::uint32_t proxy_header_taken_ = 0;  // bytes of an incomplete PROXY header already read (buffer_)
  std::uint8_t recursion_ = 0;

  // Worker's intrusive lists: every session, and the idle ones.
  Session* prev_ = nullptr;
  Session* next_ = nullptr;
  Session* idle_prev_ = nullptr;
  Session* idle_next_ = nullptr;
  bool idle_linked_ = false;
  std::uint64_t idle_order_ = 0;  // Worker's stamp when last marked idle
  friend class Worker;
};

}  // namespace frontdoor::server
