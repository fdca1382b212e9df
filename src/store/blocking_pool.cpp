#include "frontdoor/store/blocking_pool.hpp"

#include <errno.h>
#include <fcntl.h>
#include <pqxx/pqxx>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

namespace frontdoor::store {
namespace {

// A connection the server closed while it sat idle (a restart, an idle timeout) still looks open to
// libpq until a query fails on it, and that failure opens the store's breaker: keys not loaded then
// fall back for seconds while PostgreSQL is healthy. A peek finds the end of the stream (or the
// server's farewell message: an idle connection has nothing else to read).
bool idle_connection_alive(const pqxx::connection& connection) {
  char byte;
  const ssize_t n = ::recv(connection.sock(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

BlockingPool::BlockingPool(std::string name, std::string dsn, unsigned threads, std::chrono::milliseconds job_timeout)
    : name_(std::move(name)), dsn_(std::move(dsn)), job_timeout_(job_timeout) {
  const unsigned count = std::max(1u, threads);
  running_.resize(count);
  for (unsigned i = 0; i < count; ++i) {
    threads_.emplace_back([this, i] { run(i); });
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  }
  if (!dsn_.empty() && job_timeout_.count() > 0) {
    watchdog_ = std::thread([this] { watch(); });
    pthread_setname_np(watchdog_.native_handle(), "fd-pg-watchdog");
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
    for (auto& job : running_) cut(job, nullptr);  // nobody waits for their answers any more
  }
  wake_.notify_all();
  watchdog_wake_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  if (watchdog_.joinable()) watchdog_.join();
}

void BlockingPool::cut(RunningJob& job, const char* why) {
  if (job.socket < 0 || job.cut) return;
  job.cut = true;
  ::shutdown(job.socket, SHUT_RDWR);
  if (why != nullptr) spdlog::warn("{}: {}: its PostgreSQL connection is cut", name_, why);
}

void BlockingPool::watch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    for (auto& job : running_) {
      if (job.socket < 0 || job.cut) continue;
      if (job.cut_at <= now) {
        const auto ms = job_timeout_.count();
        cut(job, fmt::format("a job got no answer within {} ms", ms).c_str());
      } else {
        next = std::min(next, job.cut_at);
      }
    }
    if (next == std::chrono::steady_clock::time_point::max()) watchdog_wake_.wait(lock);
    else watchdog_wake_.wait_until(lock, next);
  }
}

void BlockingPool::run(std::size_t index) {
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
    if (!dsn_.empty() && (!connection || !connection->is_open() || !idle_connection_alive(*connection))) {
      connection.reset();
      try {
        connection = std::make_unique<pqxx::connection>(dsn_);
      } catch (const std::exception& e) {
        connect_error = e.what();
        while (!connect_error.empty() && connect_error.back() == '\n') connect_error.pop_back();
      }
    }
    const int watched = connection && job_timeout_.count() > 0 ? ::fcntl(connection->sock(), F_DUPFD_CLOEXEC, 0) : -1;
    if (watched >= 0) {
      {
        std::lock_guard lock(mutex_);
        running_[index] = {watched, std::chrono::steady_clock::now() + job_timeout_, stopping_};
        if (stopping_) ::shutdown(watched, SHUT_RDWR);  // stop() came between the wait and here
      }
      watchdog_wake_.notify_one();
    }
    try {
      job(connection.get(), connect_error);
    } catch (...) {
      // Jobs report their own errors; one that escapes still must not end the thread.
    }
    bool was_cut = false;
    if (watched >= 0) {
      {
        std::lock_guard lock(mutex_);
        was_cut = running_[index].cut;
        running_[index] = {};
      }
      ::close(watched);
    }
    // A cut connection may still look open to libpq (it saw the error, not the close).
    if (connection && (was_cut || !connection->is_open())) connection.reset();
  }
}

}  // namespace frontdoor::store
