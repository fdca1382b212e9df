#pragma once
// RedisClient: one asynchronous hiredis connection driven by an Asio io_context. hiredis 0.14 has
// neither an Asio adapter nor a timer hook, so this is both:
//
// - It connects by itself (host names resolved asynchronously, never on the event loop) and
//   reconnects with a doubling backoff (100 ms .. 5 s). AUTH and SELECT run first when configured.
// - `command` fails at once (returns false, no callback) while not connected: callers fall back
//   rather than queue behind a dead server.
// - Every command has a deadline (`command_timeout`). Replies come in order, so one timer for the
//   oldest is enough; when it passes, the connection is dropped, and hiredis answers every pending
//   command with no reply (nullptr). A slow Redis is treated as a dead one.
//
// Threads: the io_context's thread only, callbacks included. Owned by its user; destroying it
// answers pending commands with nullptr first.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct redisAsyncContext;
struct redisReply;

namespace frontdoor::io {

struct RedisOptions {
  std::string address;   // "host:port" or "unix:/path/to/socket"
  // Or Sentinels: at every (re)connection the first that answers names the primary of
  // `sentinel_master`; the client then connects to it and checks it is a primary (ROLE). A
  // READONLY error (a primary demoted under us) drops the connection, so the next one asks again.
  std::vector<std::string> sentinels;
  std::string sentinel_master;
  std::string password;  // AUTH first when not empty
  std::uint32_t database = 0;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{100};
};

struct RedisCounters {
  std::uint64_t commands = 0;
  std::uint64_t failed = 0;       // answered with no reply (timeout, connection lost)
  std::uint64_t timeouts = 0;     // connections dropped for a late reply
  std::uint64_t connects = 0;     // successful connections (the first one included)
  std::uint64_t connect_failures = 0;

  RedisCounters& operator+=(const RedisCounters& o) noexcept {
    commands += o.commands;
    failed += o.failed;
    timeouts += o.timeouts;
    connects += o.connects;
    connect_failures += o.connect_failures;
    return *this;
  }
};

class RedisClient {
 public:
  // `reply` is nullptr when there was none; it is freed after the callback returns.
  using Callback = void (*)(void* user, const redisReply* reply);

  RedisClient(boost::asio::io_context& io, RedisOptions options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  void start();
  // Disconnects for good: pending commands are answered with nullptr.
  void stop();
  // Connected, and the handshake answered (a TCP connection alone says nothing of a stopped Redis).
  bool connected() const noexcept { return state_ == State::connected && verified_ && !asking_sentinel_; }
  // Sends one command (arguments are copied). False, and no callback, when not connected.
  bool command(std::span<const std::string_view> args, Callback callback, void* user);
  const RedisCounters& counters() const noexcept { return counters_; }

  // Subscription (a client of its own: once subscribed, a connection carries nothing else). Call
  // before start(). After every (re)connection `channel` is subscribed again and `callback(user,
  // nullptr)` runs once it is — messages may have been missed while disconnected — then
  // `callback(user, &payload)` for each message. TCP keep-alive finds a dead peer.
  using MessageCallback = void (*)(void* user, const std::string_view* message);
  void subscribe(std::string channel, MessageCallback callback, void* user);

 private:
  enum class State : std::uint8_t { idle, resolving, connecting, connected, stopped };
  struct Events;   // hiredis' event hooks, bound to the socket
  struct Pending {
    RedisClient* client;
    Callback callback;
    void* user;
  };

  void connect();
  void connect_to(const std::string& host, std::uint16_t port);
  void try_next_address();
  void attach(redisAsyncContext* context);
  void schedule_reconnect();
  void arm_timer();
  void on_timer();
  void handshake();
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  static void on_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_handshake_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_message(redisAsyncContext* context, void* reply, void* privdata);
  bool send(std::span<const std::string_view> args, Callback callback, void* user);
  void drop_connection(const char* why);  // why == nullptr: quietly

  boost::asio::io_context& io_;
  RedisOptions options_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer timer_;      // connect deadline, then the oldest command's deadline
  boost::asio::steady_timer reconnect_;
  boost::asio::steady_timer idle_ping_;
  static constexpr auto kIdlePing = std::chrono::seconds(2);
  bool verified_ = false;  // the handshake's PING was answered on this connection
  unsigned failures_said_ = 0;
  std::chrono::steady_clock::time_point last_failure_said_{};
  bool say_failure() noexcept;
  void arm_idle_ping();
  State state_ = State::idle;
  redisAsyncContext* context_ = nullptr;
  std::shared_ptr<Events> events_;
  std::vector<std::string> candidates_;  // resolved addresses not tried yet
  std::uint16_t port_ = 0;
  std::deque<std::chrono::steady_clock::time_point> deadlines_;  // of the commands in flight, oldest first
  std::vector<std::unique_ptr<Pending>> free_pending_;
  std::chrono::milliseconds backoff_{100};
  bool timer_armed_ = false;
  RedisCounters counters_;
  std::string channel_;  // subscribed after each connection when not empty
  // Sentinel mode: the connection in progress is to a Sentinel (asking), and what it answered.
  bool asking_sentinel_ = false;
  std::size_t next_sentinel_ = 0;
  std::string primary_;  // "host:port" named by a Sentinel, for the next connection
  std::string current_;  // what the connection in progress is to (for the log)
  MessageCallback on_message_ = nullptr;
  void* message_user_ = nullptr;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for handlers that outlive this
};

}  // namespace frontdoor::io
