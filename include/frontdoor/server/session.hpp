#pragma once
// Session: one client connection on one worker — the keep-alive loop, the limits and smuggling
// checks (through the strict parser), the pipeline, and the proxy exchange with an upstream.
//
// I/O discipline: sockets are non-blocking; writes are tried synchronously first and only fall
// back to an asynchronous write when the kernel buffer is full, so a small response costs one
// send and no completion handler. Bodies stream through fixed buffers: the client buffer for the
// request, the upstream connection's buffer for the response; a head is serialised into the
// worker's scratch space and copied out only if a write blocks.
//
// Timeouts are coarse deadlines checked by the worker's 100 ms tick, not a timer per operation.
// Lifetime: owned by the worker (recycled); freed when closed and no client operation is
// outstanding. Worker thread only.
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/http/message_head.hpp"
#include "frontdoor/manifest/manifest.hpp"
#include "frontdoor/pipeline/request_context.hpp"
#include "frontdoor/proxy/head_writer.hpp"
#include "frontdoor/server/client_stream.hpp"
#include "frontdoor/upstream/connection.hpp"


namespace frontdoor::server {

class Worker;
struct ListenerInfo;

class Session final : public upstream::ConnectionOwner {
 public:
  explicit Session(Worker& worker);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start(boost::asio::ip::tcp::socket socket, const boost::asio::ip::tcp::endpoint& peer,
             const ListenerInfo& listener);

  // Events from the upstream connection this session owns.
  void on_upstream_connected(const boost::system::error_code& ec) override;
  void on_upstream_read(const boost::system::error_code& ec) override;
  void on_upstream_write(const boost::system::error_code& ec) override;

  // Called by the worker's tick when `deadline()` has passed.
  void on_deadline(pipeline::Clock::time_point now);
  pipeline::Clock::time_point deadline() const noexcept { return deadline_; }
  // Draining: close now if idle between requests; otherwise close after the current response.
  void drain() noexcept;
  void force_close() noexcept { close_now(); }

 private:
  enum class Phase : std::uint8_t {
    reading_head,       // waiting for (the rest of) a request head
    limiting,           // a global rate limit waits for Redis, or a leaky bucket holds the request
    queued,             // the manifest's max_connections are all open: waiting for one
    connecting,         // upstream connect in progress
    sending,            // request head/body going upstream
    awaiting_response,  // request sent, response head not complete yet
    relaying,           // response head sent to the client, body streaming
    replying,           // a local reply is being written
    lingering,          // reply written before close: discarding what the client still sends
    closed,
  };
  using Step = void (Session::*)();

  // Request side.
  void read_client();
  void on_client_read(const boost::system::error_code& ec, std::size_t n);
  void next_request();
  void start_head_clock();
  bool parse_request();
  void begin_request();
  void run_pipeline();
  void start_upstream();
  void start_timer(pipeline::Clock::duration delay, Step then);
  void cancel_timer() noexcept;
  bool take_connection_slot();
  void leave_connection_queue() noexcept;
  static void resume_connect(Waiter& waiter);
  static void resume_pipeline(Waiter& waiter);
  void resume_after_hold();
  void connect_upstream();
  void send_request_head();
  void continue_upload();
  void upload_more();
  bool retry_stale_connection();
  bool retry_elsewhere(Error error);
  bool retry_after_bad_answer(Error error, unsigned status);
  bool idempotent() const noexcept;
  bool take_retry_slot() noexcept;
  void request_sent();
  // Response side.
  void process_upstream();
  void process_response_head();
  void relay_response_body(std::string_view head);
  void relay_more();
  void response_done();
  // Outcomes.
  void fail(Error error, std::string_view detail = {});
  void reply(Error error, std::string_view detail, bool close);
  void reply_done();
  void finish_request();
  void release_upstream(bool reusable) noexcept;
  void linger();
  void close_now() noexcept;
  void maybe_destroy() noexcept;

  // Writes head+body without blocking if the kernel takes it all, then runs `next`.
  void send_client(std::string_view head, std::string_view body, Step next);
  void send_upstream(std::string_view head, std::string_view body, Step next);
  void on_client_written(const boost::system::error_code& ec);
  std::string_view keep_unsent(std::string_view head, std::string_view body, std::size_t written, Step next);

  void set_deadline(pipeline::Clock::duration timeout) noexcept;
  std::string_view client_data() const noexcept { return {buffer_.get() + begin_, end_ - begin_}; }

  Worker& worker_;
  ClientStream client_;
  boost::asio::steady_timer backoff_timer_;  // armed only between a failed attempt and its retry
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
  std::uint64_t request_body_left_ = 0;
  http::ChunkedScanner request_chunks_;
  bool request_body_done_ = true;
  bool head_started_ = false;  // some bytes of the next head have arrived
  bool request_active_ = false;  // parsed and not yet finished (counted, logged)
  pipeline::RequestContext ctx_;
  std::array<char, 128> request_id_{};
  std::array<char, 46> client_ip_{};
  std::uint8_t client_ip_size_ = 0;
  // Copies for the access log: the head's bytes are overwritten while the body streams.
  std::string log_method_;
  std::string log_target_;

  // The upstream exchange.
  upstream::UpstreamConnection* upstream_ = nullptr;
  bool upstream_reused_ = false;  // taken from the pool rather than connected for this request
  bool connection_slot_ = false;  // counted in the manifest's max_connections, not yet given to a connection
  bool holds_pending_ = false;    // counted in the manifest's max_pending
  Waiter connection_waiter_;      // in the worker's queue for the manifest while Phase::queued
  bool retried_stale_ = false;
  bool counted_inflight_ = false;  // this attempt counts in its endpoint's in-flight load
  manifest::EndpointId inflight_endpoint_ = 0;
  bool upstream_early_event_ = false;  // the upstream answered or closed while we were uploading
  http::ResponseHead response_;
  std::vector<http::Header> response_headers_;
  http::HeadScanner response_scanner_;
  proxy::ClientFraming client_framing_ = proxy::ClientFraming::none;
  bool dechunk_ = false;
  std::uint64_t response_body_left_ = 0;
  http::ChunkedScanner response_chunks_;
  bool response_head_sent_ = false;
  bool upstream_reusable_ = false;
  bool close_after_response_ = false;

  // Writes that blocked: the unsent part of a scratch head, then a view of the unsent body.
  std::string spill_;
  Step after_write_ = nullptr;
  bool client_write_pending_ = false;
  bool client_read_pending_ = false;
  std::uint32_t timers_pending_ = 0;    // backoff_timer_ waits not completed yet
  std::uint32_t timer_generation_ = 0;  // of the newest wait; older ones do nothing

  pipeline::Clock::time_point deadline_{};
  pipeline::Clock::time_point head_deadline_{};
  pipeline::Clock::time_point request_deadline_ = pipeline::Clock::time_point::max();
  std::uint32_t linger_budget_ = 0;
  std::uint8_t recursion_ = 0;

  // Worker's intrusive list.
  Session* prev_ = nullptr;
  Session* next_ = nullptr;
  friend class Worker;
};

}  // namespace frontdoor::server
