#include "frontdoor/store/blocking_pool.hpp"

#include <pqxx/pqxx>
#include <pthread.h>

namespace frontdoor::store {

BlockingPool::BlockingPool(std::string name, std::string dsn, unsigned threads)
    : name_(std::move(name)), dsn_(std::move(dsn)) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i) {
    threads_.emplace_back([this] { run(); });
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  }
}

BlockingPool::~BlockingPool() { stop(); }

void BlockingPool::submit(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void BlockingPool::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void BlockingPool::run() {
  std::unique_ptr<pqxx::connection> connection;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    std::string connect_error;
    if (!dsn_.empty() && (!connection || !connection->is_open())) {
      connection.reset();
      try {
        connection = std::make_unique<pqxx::connection>(dsn_);
      } catch (const std::exception& e) {
        connect_error = e.what();
        while (!connect_error.empty() && connect_error.back() == '\n') connect_error.pop_back();
      }
    }
    try {
      job(connection.get(), connect_error);
    } catch (...) {
      // Jobs report their own errors; one that escapes still must not end the thread.
    }
    if (connection && !connection->is_open()) connection.reset();
  }
}

}  // namespace frontdoor::store
