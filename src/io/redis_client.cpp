#include "frontdoor/io/redis_client.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <charconv>

namespace frontdoor::io {
namespace asio = boost::asio;
using boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

namespace {
constexpr std::chrono::milliseconds kBackoffMin{100};
constexpr std::chrono::milliseconds kBackoffMax{5000};
}  // namespace

// The socket hiredis opened, watched by Asio on hiredis' behalf. hiredis says what it wants
// (add/del read/write); a readiness wait is armed while it wants it. Handlers hold a shared_ptr,
// so this outlives the context; `alive` turns false when hiredis cleans up (the fd is hiredis').
struct RedisClient::Events : std::enable_shared_from_this<RedisClient::Events> {
  Events(asio::io_context& io, redisAsyncContext* c) : socket(io), context(c) { socket.assign(c->c.fd); }

  asio::posix::stream_descriptor socket;
  redisAsyncContext* context;
  bool alive = true;
  bool reading = false, writing = false;
  bool read_armed = false, write_armed = false;

  void arm(bool read) {
    bool& armed = read ? read_armed : write_armed;
    if (armed || !alive) return;
    armed = true;
    socket.async_wait(read ? asio::posix::descriptor_base::wait_read : asio::posix::descriptor_base::wait_write,
                      [self = shared_from_this(), read](const error_code& ec) {
                        (read ? self->read_armed : self->write_armed) = false;
                        bool& wanted = read ? self->reading : self->writing;
                        if (ec || !self->alive || !wanted) return;
                        // May free the context (cleanup() then clears `alive`).
                        if (read) redisAsyncHandleRead(self->context);
                        else redisAsyncHandleWrite(self->context);
                        if (self->alive && wanted) self->arm(read);
                      });
  }

  static Events& of(void* data) { return *static_cast<Events*>(data); }
  static void add_read(void* data) { of(data).reading = true, of(data).arm(true); }
  static void del_read(void* data) { of(data).reading = false; }
  static void add_write(void* data) { of(data).writing = true, of(data).arm(false); }
  static void del_write(void* data) { of(data).writing = false; }
  static void cleanup(void* data) {
    Events& e = of(data);
    e.alive = e.reading = e.writing = false;
    error_code ignored;
    e.socket.cancel(ignored);
    (void)e.socket.release();  // hiredis closes its own fd
  }
};

RedisClient::RedisClient(asio::io_context& io, RedisOptions options)
    : io_(io), options_(std::move(options)), resolver_(io), timer_(io), reconnect_(io), idle_ping_(io) {}

RedisClient::~RedisClient() {
  stop();
  *alive_ = false;
}

void RedisClient::start() {
  if (state_ != State::idle) return;
  connect();
  arm_idle_ping();
}

void RedisClient::stop() {
  if (state_ == State::stopped) return;
  state_ = State::stopped;
  resolver_.cancel();
  timer_.cancel();
  reconnect_.cancel();
  idle_ping_.cancel();
  if (context_ != nullptr) {
    auto* context = context_;
    context_ = nullptr;
    redisAsyncFree(context);  // answers pending commands with nullptr
  }
  deadlines_.clear();
}

void RedisClient::connect() {
  std::string address = options_.address;
  if (!options_.sentinels.empty()) {
    // Sentinel mode: ask one (in turn) for the primary, then connect to what it named.
    asking_sentinel_ = primary_.empty();
    address = asking_sentinel_ ? options_.sentinels[next_sentinel_++ % options_.sentinels.size()]
                               : std::exchange(primary_, std::string());
  }
  current_ = address;
  if (address.rfind("unix:", 0) == 0) {
    state_ = State::connecting;
    attach(redisAsyncConnectUnix(address.c_str() + 5));
    return;
  }
  const auto colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::uint16_t port = 0;
  const char* port_text = address.data() + colon + 1;
  std::from_chars(port_text, address.data() + address.size(), port);
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  if (!ec) return connect_to(host, port);
  // A name: resolved off the event loop (Asio's resolver thread), then connected by address.
  state_ = State::resolving;
  resolver_.async_resolve(host, std::to_string(port),
                          [this, alive = alive_, port](const error_code& error,
                                                       const asio::ip::tcp::resolver::results_type& results) {
                            if (!*alive || state_ != State::resolving) return;
                            if (error || results.empty()) {
                              ++counters_.connect_failures;
                              spdlog::warn("redis {}: cannot resolve: {}", current_,
                                           error ? error.message() : "no address");
                              state_ = State::idle;
                              return schedule_reconnect();
                            }
                            // Every address in turn (localhost may be ::1 first, and Redis on 127.0.0.1 only).
                            candidates_.clear();
                            for (const auto& entry : results) candidates_.push_back(entry.endpoint().address().to_string());
                            port_ = port;
                            try_next_address();
                          });
}

// The next resolved address, or (none left) the backoff before resolving again.
void RedisClient::try_next_address() {
  if (candidates_.empty()) return schedule_reconnect();
  // From the event loop: this may run inside a hiredis callback of the context that just failed.
  boost::asio::post(io_, [this, alive = alive_] {
    if (!*alive || (state_ != State::idle && state_ != State::resolving) || candidates_.empty()) return;
    const std::string host = candidates_.front();
    candidates_.erase(candidates_.begin());
    connect_to(host, port_);
  });
}

void RedisClient::connect_to(const std::string& host, std::uint16_t port) {
  state_ = State::connecting;
  attach(redisAsyncConnect(host.c_str(), port));
}

void RedisClient::attach(redisAsyncContext* context) {
  if (context == nullptr || context->err) {
    ++counters_.connect_failures;
    spdlog::warn("redis {}: cannot connect: {}", current_,
                 context != nullptr ? context->errstr : "out of memory");
    if (context != nullptr) redisAsyncFree(context);
    state_ = State::idle;
    return try_next_address();
  }
  events_ = std::make_shared<Events>(io_, context);
  context->ev.data = events_.get();
  context->ev.addRead = &Events::add_read;
  context->ev.delRead = &Events::del_read;
  context->ev.addWrite = &Events::add_write;
  context->ev.delWrite = &Events::del_write;
  context->ev.cleanup = &Events::cleanup;
  context->data = this;
  context_ = context;
  redisAsyncSetDisconnectCallback(context, &RedisClient::on_disconnect);
  // Last: this asks for the first write event, which is how hiredis learns the connect finished.
  redisAsyncSetConnectCallback(context, &RedisClient::on_connect);
  timer_.expires_after(options_.connect_timeout);
  arm_timer();
}

void RedisClient::on_connect(const redisAsyncContext* context, int status) {
  auto& self = *static_cast<RedisClient*>(context->data);
  if (self.state_ != State::connecting) return;
  if (status != REDIS_OK) {
    // hiredis frees the context after this returns.
    ++self.counters_.connect_failures;
    spdlog::warn("redis {}: cannot connect: {}", self.current_, context->errstr);
    self.context_ = nullptr;
    self.state_ = State::idle;
    return self.try_next_address();
  }
  // Connected in TCP only: a Redis that is stopped, refuses our password or is no primary accepts
  // connections all the same. It counts (and the backoff resets) once the handshake is answered.
  self.candidates_.clear();
  self.state_ = State::connected;
  self.verified_ = false;
  self.timer_.cancel();  // the connect deadline; commands arm their own
  self.timer_armed_ = false;
  self.handshake();
}

void RedisClient::on_disconnect(const redisAsyncContext* context, int) {
  auto& self = *static_cast<RedisClient*>(context->data);
  if (self.context_ == context) self.context_ = nullptr;
  self.deadlines_.clear();
  if (self.state_ == State::stopped) return;
  if (self.state_ == State::connected && !self.asking_sentinel_)
    spdlog::warn("redis {}: connection lost", self.current_);
  self.state_ = State::idle;
  if (!self.primary_.empty()) {
    // A Sentinel just named the primary: connect to it now, not after a backoff.
    boost::asio::post(self.io_, [&self, alive = self.alive_] {
      if (*alive && self.state_ == State::idle) self.connect();
    });
    return;
  }
  self.schedule_reconnect();
}

void RedisClient::handshake() {
  if (asking_sentinel_) {
    const std::string_view ask[] = {"SENTINEL", "get-master-addr-by-name", options_.sentinel_master};
    send(ask, [](void* user, const redisReply* r) {
      auto& self = *static_cast<RedisClient*>(user);
      if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
          r->element[1]->type == REDIS_REPLY_STRING) {
        const std::string host(r->element[0]->str, r->element[0]->len);
        self.primary_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                        std::string(r->element[1]->str, r->element[1]->len);
        spdlog::info("redis: Sentinel {} names {} as the primary of {}", self.current_, self.primary_,
                     self.options_.sentinel_master);
        return self.drop_connection(nullptr);
      }
      self.drop_connection("this Sentinel does not name a primary (unknown master name, or no answer)");
    }, this);
    return;
  }
  if (!options_.password.empty()) {
    const std::string_view auth[] = {"AUTH", options_.password};
    command(auth, nullptr, nullptr);
  }
  if (options_.database != 0) {
    const std::string db = std::to_string(options_.database);
    const std::string_view select[] = {"SELECT", db};
    command(select, nullptr, nullptr);
  }
  if (!options_.sentinels.empty()) {
    // What a Sentinel named may have been demoted since (a failover in progress): check.
    const std::string_view role[] = {"ROLE"};
    send(role, [](void* user, const redisReply* r) {
      auto& self = *static_cast<RedisClient*>(user);
      if (r == nullptr) return;
      const bool primary = r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
                           std::string_view(r->element[0]->str, r->element[0]->len) == "master";
      if (!primary) self.drop_connection("is not a primary (any more): asking the Sentinels again");
    }, this);
  }
  // Answered after what precedes it (replies come in order): the handshake went through.
  const std::string_view ping[] = {"PING"};
  send(ping, [](void* user, const redisReply* r) {
    auto& self = *static_cast<RedisClient*>(user);
    if (r == nullptr || r->type == REDIS_REPLY_ERROR || self.state_ != State::connected) return;
    self.verified_ = true;
    ++self.counters_.connects;
    if (self.counters_.connects > 1 || self.counters_.connect_failures > 0)
      spdlog::info("redis {}: connected", self.current_);
    self.backoff_ = kBackoffMin;
    self.failures_said_ = 0;
  }, this);
  if (!channel_.empty() && context_ != nullptr) {
    if (current_.rfind("unix:", 0) != 0) redisEnableKeepAlive(&context_->c);  // TCP only
    // No deadline: the confirmation and the messages come whenever they come.
    redisAsyncCommand(context_, &RedisClient::on_message, this, "SUBSCRIBE %b", channel_.data(), channel_.size());
  }
}

void RedisClient::subscribe(std::string channel, MessageCallback callback, void* user) {
  channel_ = std::move(channel);
  on_message_ = callback;
  message_user_ = user;
}

void RedisClient::on_message(redisAsyncContext*, void* reply, void* privdata) {
  auto& self = *static_cast<RedisClient*>(privdata);
  const auto* r = static_cast<const redisReply*>(reply);
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || self.on_message_ == nullptr) return;
  const auto* kind = r->element[0];
  if (kind->type != REDIS_REPLY_STRING) return;
  const std::string_view what(kind->str, kind->len);
  if (what == "subscribe") return self.on_message_(self.message_user_, nullptr);
  if (what != "message" || r->element[2]->type != REDIS_REPLY_STRING) return;
  const std::string_view payload(r->element[2]->str, r->element[2]->len);
  self.on_message_(self.message_user_, &payload);
}

void RedisClient::schedule_reconnect() {
  if (state_ == State::stopped) return;
  reconnect_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kBackoffMax);
  reconnect_.async_wait([this, alive = alive_](const error_code& ec) {
    if (ec || !*alive || state_ != State::idle) return;
    connect();
  });
}

bool RedisClient::command(std::span<const std::string_view> args, Callback callback, void* user) {
  if (asking_sentinel_) return false;  // connected, but to a Sentinel
  return send(args, callback, user);
}

void RedisClient::drop_connection(const char* why) {
  if (why != nullptr) spdlog::warn("redis {}: {}", current_, why);
  if (context_ == nullptr) return;
  auto* context = context_;
  context_ = nullptr;
  redisAsyncFree(context);  // deferred by hiredis when inside its callback; on_disconnect reconnects
}

bool RedisClient::send(std::span<const std::string_view> args, Callback callback, void* user) {
  if (state_ != State::connected || context_ == nullptr) return false;
  constexpr std::size_t kMaxArgs = 16;
  const char* argv[kMaxArgs];
  std::size_t lengths[kMaxArgs];
  if (args.size() > kMaxArgs) return false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lengths[i] = args[i].size();
  }
  std::unique_ptr<Pending> pending;
  if (!free_pending_.empty()) {
    pending = std::move(free_pending_.back());
    free_pending_.pop_back();
  } else {
    pending = std::make_unique<Pending>();
  }
  *pending = Pending{this, callback, user};
  if (redisAsyncCommandArgv(context_, &RedisClient::on_reply, pending.get(), static_cast<int>(args.size()), argv,
                            lengths) != REDIS_OK)
    return false;
  pending.release();  // owned by hiredis until on_reply
  ++counters_.commands;
  deadlines_.push_back(SteadyClock::now() + options_.command_timeout);
  if (!timer_armed_) {
    timer_.expires_at(deadlines_.front());
    arm_timer();
  }
  return true;
}

void RedisClient::on_reply(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(privdata));
  RedisClient& self = *pending->client;
  if (!self.deadlines_.empty()) self.deadlines_.pop_front();
  auto* r = static_cast<const redisReply*>(reply);
  if (r == nullptr) ++self.counters_.failed;
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && !self.options_.sentinels.empty() &&
      std::string_view(r->str, r->len).rfind("READONLY", 0) == 0)
    self.drop_connection("answers READONLY (demoted by a failover): asking the Sentinels again");
  if (pending->callback != nullptr) {
    pending->callback(pending->user, r);
  } else if (r != nullptr && r->type == REDIS_REPLY_ERROR && self.context_ != nullptr) {
    // A handshake command (AUTH, SELECT) failed: nothing after it can work. A failed connection, so
    // the backoff grows (it reconnected every 100 ms, logging each time).
    ++self.counters_.connect_failures;
    if (self.say_failure())
      spdlog::error("redis {}: {} (retrying with a growing backoff; said at most every 10 s)", self.current_,
                    std::string_view(r->str, r->len));
    auto* context = self.context_;
    self.context_ = nullptr;
    self.state_ = State::idle;
    redisAsyncFree(context);  // deferred by hiredis until this callback returns
  }
  if (self.free_pending_.size() < 64) self.free_pending_.push_back(std::move(pending));
}

void RedisClient::arm_timer() {
  timer_armed_ = true;
  timer_.async_wait([this, alive = alive_](const error_code& ec) {
    // Aborted: the timer was re-set (and re-armed) or stopped; the newer wait owns timer_armed_.
    if (ec || !*alive) return;
    timer_armed_ = false;
    on_timer();
  });
}

// Repeated failures of one kind (a wrong password, a hung server) are said once per 10 s.
bool RedisClient::say_failure() noexcept {
  const auto now = SteadyClock::now();
  if (failures_said_ > 0 && now - last_failure_said_ < std::chrono::seconds(10)) return false;
  ++failures_said_;
  last_failure_said_ = now;
  return true;
}

// A connection with nothing to do is asked PING every kIdlePing: a Redis that hangs (stopped, or
// stuck on its disk) still accepts TCP and acknowledges keep-alives, and went on counting as
// connected (for /ready too) while every command would have timed out.
void RedisClient::arm_idle_ping() {
  idle_ping_.expires_after(kIdlePing);
  idle_ping_.async_wait([this, alive = alive_](const error_code& ec) {
    if (ec || !*alive || state_ == State::stopped) return;
    if (state_ == State::connected && verified_ && !asking_sentinel_ && channel_.empty() && deadlines_.empty()) {
      const std::string_view ping[] = {"PING"};
      send(ping, nullptr, nullptr);
    }
    arm_idle_ping();
  });
}

void RedisClient::on_timer() {
  const auto now = SteadyClock::now();
  if (state_ == State::connecting) {
    if (timer_.expiry() > now) return arm_timer();
    ++counters_.connect_failures;
    spdlog::warn("redis {}: connect timed out after {} ms", current_, options_.connect_timeout.count());
    auto* context = context_;
    context_ = nullptr;
    state_ = State::idle;
    if (context != nullptr) redisAsyncFree(context);
    return try_next_address();
  }
  if (state_ != State::connected || deadlines_.empty()) return;
  if (deadlines_.front() > now) {
    timer_.expires_at(deadlines_.front());
    return arm_timer();
  }
  ++counters_.timeouts;
  if (!verified_) ++counters_.connect_failures;
  if (say_failure())
    spdlog::warn("redis {}: no reply within {} ms; reconnecting (said at most every 10 s)", current_,
                 options_.command_timeout.count());
  auto* context = context_;
  context_ = nullptr;
  state_ = State::idle;
  redisAsyncFree(context);  // pending commands get nullptr; on_disconnect schedules the reconnect
}

}  // namespace frontdoor::io
