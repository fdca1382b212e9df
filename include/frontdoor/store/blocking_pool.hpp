#pragma once
// BlockingPool: a few threads that run blocking work for the control thread — libpqxx queries (6.4
// has no asynchronous API) and the DNS lookups of stored manifests' endpoints — so that no blocking
// call runs on a worker or on the control thread. Jobs post their results back themselves.
//
// With a connection string each thread keeps one PostgreSQL connection, opened when a job first
// needs it, checked before each job (a connection found closed is opened again) and dropped when a
// job leaves it broken. Without one, jobs get no connection.
//
// Threads: submit() and stop() from any thread; jobs run on the pool's threads. Destroying the pool
// stops it: queued jobs are dropped, running ones finish first.
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

  BlockingPool(std::string name, std::string dsn, unsigned threads);
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  void submit(Job job);
  void stop();

 private:
  void run();

  std::string name_;
  std::string dsn_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace frontdoor::store
