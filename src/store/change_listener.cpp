#include "frontdoor/store/change_listener.hpp"

#include <fcntl.h>
#include <pqxx/pqxx>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <utility>

namespace frontdoor::store {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, const std::string& channel, const ChangeListener::OnChange& on_change)
      : pqxx::notification_receiver(c, channel), on_change_(on_change) {}
  void operator()(const std::string& payload, int) override { on_change_(payload); }

 private:
  const ChangeListener::OnChange& on_change_;
};

}  // namespace

ChangeListener::ChangeListener(std::string dsn, std::string channel, std::chrono::milliseconds connect_timeout,
                               std::chrono::milliseconds answer_timeout, OnChange on_change, OnState on_state)
    : dsn_(std::move(dsn)), channel_(std::move(channel)), connect_timeout_(connect_timeout),
      answer_timeout_(answer_timeout),
      on_change_(std::move(on_change)), on_state_(std::move(on_state)) {}

ChangeListener::~ChangeListener() { stop(); }

void ChangeListener::start() {
  running_ = true;
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "fd-pg-listen");
  watchdog_ = std::thread([this] { watch(); });
  pthread_setname_np(watchdog_.native_handle(), "fd-pg-listen-wd");
}

void ChangeListener::stop() {
  {
    std::lock_guard lock(mutex_);
    running_ = false;
    if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

void ChangeListener::watch() {
  std::unique_lock lock(mutex_);
  while (running_) {
    wake_.wait_for(lock, std::chrono::milliseconds(100));
    if (ping_due_ && std::chrono::steady_clock::now() > *ping_due_ && socket_ >= 0) {
      ::shutdown(socket_, SHUT_RDWR);  // the ping fails at once; the listener reconnects
      ping_due_.reset();
      cut_by_watchdog_ = true;
    }
  }
}

void ChangeListener::expect_answer(bool expecting, std::chrono::milliseconds within) {
  std::lock_guard lock(mutex_);
  if (expecting) ping_due_ = std::chrono::steady_clock::now() + within;
  else ping_due_.reset();
}

void ChangeListener::ping(pqxx::connection_base& connection) {
  expect_answer(true, answer_timeout_);
  pqxx::nontransaction(connection, "ping").exec("SELECT 1");
  expect_answer(false);
}

void ChangeListener::run() {
  auto backoff = std::chrono::milliseconds(200);
  bool was_connected = true;  // so the first failure is reported
  while (running_) {
    std::string error;
    try {
      // Connecting without blocking in libpq (a hung server would hold it for connect_timeout, out
      // of stop()'s reach): the socket is watched first, then the handshake waits on it.
      pqxx::asyncconnection connection(dsn_);
      // Before the receiver: its UNLISTEN on the way out is still on a socket stop() can cut.
      struct WatchedSocket {
        ChangeListener& self;
        WatchedSocket(ChangeListener& s, int fd) : self(s) { watch(fd); }
        void watch(int fd) {
          std::lock_guard lock(self.mutex_);
          if (self.socket_ >= 0) ::close(self.socket_);
          self.socket_ = fd >= 0 ? ::fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
          if (!self.running_ && self.socket_ >= 0) ::shutdown(self.socket_, SHUT_RDWR);
        }
        ~WatchedSocket() {
          std::lock_guard lock(self.mutex_);
          if (self.socket_ >= 0) ::close(self.socket_);
          self.socket_ = -1;
        }
      } watched(*this, connection.sock());
      // The handshake and the LISTEN get an answer within connect_timeout + answer_timeout.
      expect_answer(true, connect_timeout_ + answer_timeout_);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // libpqxx 7 drops deferred connections; 6.4 is ours
      connection.activate();
#pragma GCC diagnostic pop
      // libpq moves to another socket when an address of the host fails: watch the one it kept.
      watched.watch(connection.sock());
      Receiver receiver(connection, channel_, on_change_);
      connection.get_notifs();  // sends the LISTEN
      expect_answer(false);
      on_state_(true, {});
      was_connected = true;
      backoff = std::chrono::milliseconds(200);
      auto next_ping = std::chrono::steady_clock::now() + kPingEvery;
      while (running_) {
        connection.await_notification(0, 200'000);
        if (std::chrono::steady_clock::now() < next_ping) continue;
        ping(connection);
        next_ping = std::chrono::steady_clock::now() + kPingEvery;
      }
      return;
    } catch (const std::exception& e) {
      error = e.what();
      while (!error.empty() && error.back() == '\n') error.pop_back();
    }
    {
      std::lock_guard lock(mutex_);
      ping_due_.reset();
      if (std::exchange(cut_by_watchdog_, false))
        error = "no answer within " + std::to_string(answer_timeout_.count()) +
                " ms (" + std::to_string((connect_timeout_ + answer_timeout_).count()) +
                " ms to connect): the server hangs, or the connection was lost on the way";
    }
    if (was_connected && running_) on_state_(false, error);
    was_connected = false;
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, backoff, [&] { return !running_.load(); });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace frontdoor::store
