#pragma once
// ChangeListener: LISTEN on the manifest store's channel over a direct PostgreSQL connection (not
// through PgBouncer's transaction pooling, which cannot hold a LISTEN), on a thread of its own. It
// reconnects with a doubling backoff (200 ms .. 5 s) and says so: after every (re)connection the
// store revalidates what it holds, since changes made meanwhile were not heard.
//
// Threads: the callbacks run on the listener's thread (post them where they belong). stop() from
// any thread returns within about 200 ms, a hung server's included: it cuts the connection (shuts
// its socket down), which also fails the UNLISTEN its receiver sends on the way out at once.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace frontdoor::store {

class ChangeListener {
 public:
  using OnChange = std::function<void(const std::string& payload)>;
  using OnState = std::function<void(bool connected, const std::string& error)>;

  ChangeListener(std::string dsn, std::string channel, OnChange on_change, OnState on_state);
  ~ChangeListener();
  ChangeListener(const ChangeListener&) = delete;
  ChangeListener& operator=(const ChangeListener&) = delete;

  void start();
  void stop();

 private:
  void run();

  std::string dsn_;
  std::string channel_;
  OnChange on_change_;
  OnState on_state_;
  std::atomic<bool> running_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  int socket_ = -1;  // a duplicate of the connection's socket while connected, for stop() (under mutex_)
  std::thread thread_;
};

}  // namespace frontdoor::store
