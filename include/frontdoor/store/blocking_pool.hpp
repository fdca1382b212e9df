#pragma once
// BlockingPool: a few threads that run blocking work for the control thread — libpqxx queries (6.4
// has no asynchronous API) and the DNS lookups of stored manifests' endpoints — so that no blocking
// call runs on a worker or on the control thread. Jobs post their results back themselves.
//
// With a connection string each thread keeps one PostgreSQL connection, opened when a job first
// needs it, checked before each job (one found closed, by either side, is opened again) and dropped
// when a job leaves it broken. Without one, jobs get no connection.
//
// A PostgreSQL that accepts connections but never answers (a hung server, a PgBouncer whose pool is
// stuck) would hold a thread for ever: statement_timeout is the server's, and libpq has no timeout
// of its own. So a job still running `job_timeout` after it started has its connection cut (the
// socket shut down): libpq's call fails at once, the job reports the error, the connection is
// opened again for the next job. stop() cuts every running job's connection the same way.
//
// Threads: submit() and stop() from any thread; jobs run on the pool's threads, the cuts on a
// watchdog thread. Destroying the pool stops it: queued jobs are dropped, running ones end first.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace frontdoor::store {

class BlockingPool {
 public:
  // `connection` is null when there is no connection string or it could not be opened
  // (`connect_error` then says why).
  using Job = std::function<void(pqxx::connection_base* connection, const std::string& connect_error)>;

  // `job_timeout` 0: jobs are never cut (a pool without connections).
  BlockingPool(std::string name, std::string dsn, unsigned threads,
               std::chrono::milliseconds job_timeout = std::chrono::milliseconds(0));
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  void submit(Job job);
  void stop();

 private:
  // A job on a connection, as the watchdog sees it. `socket` is a duplicate of the connection's: libpq
  // may close its own descriptor mid-job, and its number could then name another socket by the time
  // the watchdog cuts; the duplicate keeps naming this one until the job ends.
  struct RunningJob {
    int socket = -1;
    std::chrono::steady_clock::time_point cut_at{};
    bool cut = false;
  };

  void run(std::size_t index);
  void watch();
  void cut(RunningJob& job, const char* why);  // under mutex_

  std::string name_;
  std::string dsn_;
  std::chrono::milliseconds job_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable watchdog_wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<RunningJob> running_;  // by thread
  std::vector<std::thread> threads_;
  std::thread watchdog_;
};

}  // namespace frontdoor::store
