#pragma once
// UpstreamExchange: one request's way to an upstream and its response's way back, once the pipeline
// has picked the endpoint — wait for a connection slot, connect (or take a pooled connection), send
// the head and the body, read the response head, relay the body. Retries are decided by RetryState;
// the exchange carries them out (a new connection, a new pick, a backoff timer).
//
// It talks to the client only through ClientSide (the client session in server/ implements it): the
// client's buffered body bytes, a read for more, writes — at most one in flight — and, exactly once,
// the end of the exchange. It uses its worker only through ExchangeHost. After it calls
// ClientSide::exchange_done it touches nothing of itself until started again.
//
// I/O discipline: sockets are non-blocking; writes are tried at once and only fall back to an
// asynchronous write when the kernel's buffer is full. The response body goes from the upstream
// connection's buffer to the client without a copy; a head is serialised in the worker's scratch
// space and copied out (spill) only if its write blocks.
//
// Owned by its session (a member, reused for every request of the connection). Worker thread only.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frontdoor/core/waiter.hpp"
#include "frontdoor/http/body_cursor.hpp"
#include "frontdoor/http/message_head.hpp"
#include "frontdoor/pipeline/stages.hpp"
#include "frontdoor/proxy/head_writer.hpp"
#include "frontdoor/proxy/retry_state.hpp"
#include "frontdoor/stats/counters.hpp"
#include "frontdoor/upstream/connection.hpp"

namespace frontdoor::proxy {

// What an exchange uses of its worker.
class ExchangeHost {
 public:
  virtual boost::asio::io_context& io() noexcept = 0;
  virtual pipeline::Clock::time_point now() const noexcept = 0;
  // For deadlines and idle stamps: now() to within a few ms either way, cheaper to read.
  virtual pipeline::Clock::time_point coarse_now() const noexcept = 0;
  virtual pipeline::UpstreamHealth& health() noexcept = 0;
  virtual pipeline::PickStage& picker() noexcept = 0;  // a retry picks again
  virtual upstream::ClusterLoad* clusters() noexcept = 0;  // null: no manifest has cluster limits
  virtual stats::WorkerCounters& counters() noexcept = 0;
  virtual upstream::UpstreamPool& pool(manifest::EndpointId id) = 0;
  virtual bool draining() const noexcept = 0;
  // Scratch space for serialising heads: valid until the next call that may serialise.
  virtual char* scratch() noexcept = 0;
  virtual std::size_t scratch_size() const noexcept = 0;
  // Requests waiting for a connection under their manifest's max_connections (by Manifest::index).
  virtual Waiter& connection_queue(std::uint32_t manifest) = 0;
  virtual void wake_connection_queue(std::uint32_t manifest) = 0;
  // Closes one idle pooled connection holding a slot of the manifest: false if none on this worker.
  virtual bool close_idle_counted(std::uint32_t manifest) = 0;
  virtual void ask_peer_to_free_slot(std::uint32_t manifest) = 0;

 protected:
  ~ExchangeHost() = default;
};

enum class ClientWrite : std::uint8_t {
  done,     // the kernel took it all: go on
  pending,  // it went asynchronous: UpstreamExchange::on_client_written follows
  failed,   // the client is gone: the session closes (the exchange is aborted first)
};

// How an exchange ended.
struct ExchangeEnd {
  enum class Kind : std::uint8_t {
    complete,  // the response was relayed whole
    failed,    // no byte of a response reached the client: answer `error` locally
    cut,       // a response was being relayed and cannot be completed: close the client connection
  };
  Kind kind;
  Error error = Error::ok;
  std::string_view detail;    // for the local reply (valid during the call)
  bool close_client = false;  // complete: the client connection must close after it
};

// The client side, as an exchange needs it.
class ClientSide {
 public:
  // Bytes received from the client and not handed on; the body's come first.
  virtual std::string_view client_data() const noexcept = 0;
  virtual void consume_client_data(std::size_t n) noexcept = 0;
  // Reads more of the request body; UpstreamExchange::on_client_data follows.
  virtual void read_client_body() = 0;
  // One write at a time: never called while the previous one is pending.
  virtual ClientWrite write_client(std::string_view head, std::string_view body) = 0;
  // The exchange's deadline from now (the session's tick enforces it, capped by request_total).
  virtual void set_deadline(pipeline::Clock::duration timeout) noexcept = 0;
  // The deadline no later than `at`.
  virtual void cap_deadline(pipeline::Clock::time_point at) noexcept = 0;
  // Exactly once per start(), unless aborted first.
  virtual void exchange_done(const ExchangeEnd& end) = 0;
  // An operation of an aborted exchange completed: busy() may have turned false.
  virtual void exchange_released() noexcept = 0;
  // The upstream switched protocols (101): from now on the connection is a tunnel, with no request
  // deadline (timeouts.request_total) — only its idle time counts.
  virtual void tunnel_started() noexcept = 0;
  // The whole request (head and body) is with the upstream: from now on a client that leaves can
  // be watched for, as it is for a request without a body.
  virtual void request_sent() noexcept = 0;
  // A tunnel's upstream half-closed: the client is told the same (its own bytes may still go
  // upstream). False when it cannot be (TLS): then the tunnel ends.
  virtual bool finish_client_side() noexcept = 0;

 protected:
  ~ClientSide() = default;
};

class UpstreamExchange final : private upstream::ConnectionOwner {
 public:
  enum class Phase : std::uint8_t {
    idle,               // not started, or ended
    queued,             // the manifest's max_connections are all open: waiting for one
    backing_off,        // a retry waits for its backoff delay
    connecting,         // upstream connect in progress
    sending,            // request head/body going upstream
    awaiting_response,  // request sent, response head not complete yet
    relaying,           // response head sent to the client, body streaming
    tunneling,          // after a 101: bytes relayed both ways until one side closes or idles
  };

  UpstreamExchange(ExchangeHost& host, ClientSide& client);
  UpstreamExchange(const UpstreamExchange&) = delete;
  UpstreamExchange& operator=(const UpstreamExchange&) = delete;

  // Proxies the request the pipeline picked an endpoint for. `body`: the request body's progress
  // (owned by the session, advanced here). `tls`: the client came over TLS (X-Forwarded-Proto).
  void start(pipeline::RequestContext& ctx, const http::RequestHead& request, http::BodyCursor& body, bool tls);

  // From the session.
  void on_client_data();                                // bytes for the body arrived
  // In a tunnel, the client's end of stream (a half-close): passed on to the upstream, whose
  // answer is still relayed.
  void on_client_finished();
  void on_client_written();                             // a pending write_client finished
  void on_deadline(pipeline::Clock::time_point now, bool request_total_passed, bool client_write_pending);
  // The client connection is closing: let go of everything (no call back to the client side).
  void abort() noexcept;

  Phase phase() const noexcept { return phase_; }
  bool active() const noexcept { return phase_ != Phase::idle; }
  bool tunneling() const noexcept { return phase_ == Phase::tunneling; }
  // An operation still holds `this` (a timer wait): the session must not be freed yet.
  bool busy() const noexcept { return timers_pending_ != 0 || holds_ != 0; }
  // Waiting for a read of the client's body (the session's read is armed for the exchange).
  bool waiting_for_client() const noexcept { return waiting_for_client_; }

 private:
  using Step = void (UpstreamExchange::*)();

  // upstream::ConnectionOwner
  void on_upstream_connected(const boost::system::error_code& ec) override;
  void on_upstream_read(const boost::system::error_code& ec) override;
  void on_upstream_write(const boost::system::error_code& ec) override;

  // Request phases.
  void connect_upstream();
  bool take_connection_slot();
  void leave_connection_queue() noexcept;
  static void resume_connect(Waiter& waiter);
  void send_request_head();
  void upload_more();
  void request_sent();
  void upstream_answered_early();
  void upstream_write_failed(const boost::system::error_code& ec);
  // Response phases.
  void process_upstream();
  void process_response_head();
  void relay_response_body(std::string_view head);
  void relay_more();
  void response_done();
  // The tunnel after a 101: upstream to client ("down") and client to upstream ("up"), each with at
  // most one write in flight.
  void start_tunnel();
  void tunnel_down();
  void tunnel_down_sent();
  void tunnel_up();
  void tunnel_up_sent();
  void end_tunnel();
  // tunnel_idle; after the client's half-close, upstream_response (a client that closed outright
  // looks the same, and must not hold its slot for tunnel_idle if the upstream never closes).
  void set_tunnel_deadline();
  // Failures and retries.
  bool try_again(AttemptFailure failure, Error error, unsigned status);
  bool take_retry_slot() noexcept;
  void fail(Error error, std::string_view detail = {});
  void cut();
  void end(const ExchangeEnd& how);
  void release_upstream(bool reusable) noexcept;
  void release_slots() noexcept;
  void start_backoff(resilience::Duration delay);
  void cancel_timer() noexcept;

  void send_client(std::string_view head, std::string_view body, Step next);
  void send_upstream(std::string_view head, std::string_view body, Step next);
  std::string_view keep_unsent(std::string_view head, std::string_view body, std::size_t written, Step next);

  const snapshot::Snapshot& snapshot() const noexcept { return *ctx_->snapshot; }
  const resilience::ResiliencePolicy& policy() noexcept;

  ExchangeHost& host_;
  ClientSide& client_;
  boost::asio::steady_timer backoff_timer_;
  Phase phase_ = Phase::idle;
  pipeline::RequestContext* ctx_ = nullptr;
  const http::RequestHead* request_ = nullptr;
  http::BodyCursor* body_ = nullptr;
  bool tls_ = false;
  bool drop_expect_ = false;
  std::string_view upgrade_;  // offered to the upstream: the client's Upgrade, if the manifest allows it
  RetryState retry_;

  // The attempt in flight.
  upstream::UpstreamConnection* upstream_ = nullptr;
  bool upstream_reused_ = false;     // taken from the pool rather than connected for this attempt
  bool force_new_connection_ = false;  // the next connect opens a new connection (a stale one's retry)
  bool request_bytes_sent_ = false;  // some byte of this attempt's request was written
  bool counted_inflight_ = false;    // this attempt counts in its endpoint's in-flight load
  manifest::EndpointId inflight_endpoint_ = 0;
  // The upstream refused the rest of the request (an error answer or its end) while we were
  // uploading: the upload stops, the connection is not reused.
  bool upstream_early_event_ = false;
  bool early_answer_held_ = false;  // a 2xx/3xx that came during the upload waits for its end
  bool connection_slot_ = false;  // counted in the manifest's max_connections, not yet given to a connection
  bool holds_pending_ = false;    // counted in the manifest's max_pending
  Waiter connection_waiter_;      // in the worker's queue for the manifest while Phase::queued
  bool waiting_for_client_ = false;

  // The response.
  http::ResponseHead response_;
  std::vector<http::Header> response_headers_;
  http::HeadScanner response_scanner_;
  ClientFraming client_framing_ = ClientFraming::none;
  bool dechunk_ = false;
  std::uint64_t response_body_left_ = 0;
  http::ChunkedScanner response_chunks_;
  bool response_head_sent_ = false;
  bool upstream_reusable_ = false;
  bool close_after_response_ = false;

  // Tunnel: bytes in flight each way (consumed from their buffer once written).
  std::size_t down_bytes_ = 0;
  std::size_t up_bytes_ = 0;
  bool down_busy_ = false;
  bool client_finished_ = false;    // the client half-closed: only the upstream's answer is awaited
  bool upstream_finished_ = false;  // the upstream half-closed: only the client's bytes still go up

  // Writes that blocked: the unsent part of a scratch head, then a view of the unsent body.
  std::string spill_;
  Step after_client_write_ = nullptr;
  Step after_upstream_write_ = nullptr;
  std::uint32_t holds_ = 0;  // frames that must outlive an end() (start_tunnel)
  std::uint32_t timers_pending_ = 0;    // backoff_timer_ waits not completed yet
  std::uint32_t timer_generation_ = 0;  // of the newest wait; older ones do nothing
};

}  // namespace frontdoor::proxy
