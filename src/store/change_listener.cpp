#include "frontdoor/store/change_listener.hpp"

#include <fcntl.h>
#include <pqxx/pqxx>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

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

ChangeListener::ChangeListener(std::string dsn, std::string channel, OnChange on_change, OnState on_state)
    : dsn_(std::move(dsn)), channel_(std::move(channel)), on_change_(std::move(on_change)),
      on_state_(std::move(on_state)) {}

ChangeListener::~ChangeListener() { stop(); }

void ChangeListener::start() {
  running_ = true;
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "fd-pg-listen");
}

void ChangeListener::stop() {
  {
    std::lock_guard lock(mutex_);
    running_ = false;
    if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ChangeListener::run() {
  auto backoff = std::chrono::milliseconds(200);
  bool was_connected = true;  // so the first failure is reported
  while (running_) {
    std::string error;
    try {
      pqxx::connection connection(dsn_);
      // Before the receiver: its UNLISTEN on the way out is still on a socket stop() can cut.
      struct WatchedSocket {
        ChangeListener& self;
        explicit WatchedSocket(ChangeListener& s, int fd) : self(s) {
          std::lock_guard lock(self.mutex_);
          self.socket_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
          if (!self.running_ && self.socket_ >= 0) ::shutdown(self.socket_, SHUT_RDWR);
        }
        ~WatchedSocket() {
          std::lock_guard lock(self.mutex_);
          if (self.socket_ >= 0) ::close(self.socket_);
          self.socket_ = -1;
        }
      } watched(*this, connection.sock());
      Receiver receiver(connection, channel_, on_change_);
      connection.get_notifs();  // sends the LISTEN
      on_state_(true, {});
      was_connected = true;
      backoff = std::chrono::milliseconds(200);
      while (running_) connection.await_notification(0, 200'000);
      return;
    } catch (const std::exception& e) {
      error = e.what();
      while (!error.empty() && error.back() == '\n') error.pop_back();
    }
    if (was_connected && running_) on_state_(false, error);
    was_connected = false;
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, backoff, [&] { return !running_.load(); });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace frontdoor::store
