#pragma once
// ChangeListener: LISTEN on the manifest store's channel over a direct PostgreSQL connection (not
// through PgBouncer's transaction pooling, which cannot hold a LISTEN), on a thread of its own. It
// reconnects with a doubling backoff (200 ms .. 5 s) and says so: after every (re)connection the
// store revalidates what it holds, since changes made meanwhile were not heard.
//
// A server that hangs (stopped, stuck on its disk) still has its kernel acknowledge our TCP
// keep-alives, so the connection would look alive while nothing is heard. Every kPingEvery the
// listener asks it for `SELECT 1`; a watchdog thread cuts the connection when the answer is not in
// within `answer_timeout`, and the listener reports it down and reconnects. Connecting does not
// block in libpq either (it would, for connect_timeout, out of stop()'s reach): the socket is
// watched from the start, the watchdog bounds the handshake and the LISTEN.
//
// Threads: the callbacks run on the listener's thread (post them where they belong). stop() from
// any thread returns within about 200 ms, a hung server's included: it cuts the connection (shuts
// its socket down), which also fails the UNLISTEN its receiver sends on the way out at once.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace pqxx {
class connection_base;
}

namespace frontdoor::store {

class ChangeListener {
 public:
  using OnChange = std::function<void(const std::string& payload)>;
  using OnState = std::function<void(bool connected, const std::string& error)>;

  static constexpr auto kPingEvery = std::chrono::seconds(5);

  // `connect_timeout` and `answer_timeout` bound, together, connecting and LISTENing, and
  // `answer_timeout` each ping.
  ChangeListener(std::string dsn, std::string channel, std::chrono::milliseconds connect_timeout,
                 std::chrono::milliseconds answer_timeout, OnChange on_change, OnState on_state);
  ~ChangeListener();
  ChangeListener(const ChangeListener&) = delete;
  ChangeListener& operator=(const ChangeListener&) = delete;

  void start();
  void stop();

 private:
  void run();
  void watch();  // the watchdog thread
  void ping(pqxx::connection_base& connection);
  // Arms (or disarms) the watchdog: what is sent now must be answered `within`.
  void expect_answer(bool expecting, std::chrono::milliseconds within = {});

  std::string dsn_;
  std::string channel_;
  std::chrono::milliseconds connect_timeout_;
  std::chrono::milliseconds answer_timeout_;
  OnChange on_change_;
  OnState on_state_;
  std::atomic<bool> running_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  int socket_ = -1;  // a duplicate of the connection's socket while connected, for stop() (under mutex_)
  std::optional<std::chrono::steady_clock::time_point> ping_due_;  // the ping's answer, by then (under mutex_)
  bool cut_by_watchdog_ = false;                                    // (under mutex_)
  std::thread thread_;
  std::thread watchdog_;
};

}  // namespace frontdoor::store
