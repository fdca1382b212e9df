#include "frontdoor/server/log_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace frontdoor::server {

struct LogWriter::State {
  std::mutex mutex;
  std::condition_variable wake;      // the writer: work, reopen or stop
  std::condition_variable finished;  // stop(): the writer is done
  std::deque<std::string> queue;
  std::vector<std::string> spare;  // written buffers, handed back to workers (no malloc per flush)
  std::size_t queued_bytes = 0;
  bool reopen = false;
  bool stopping = false;
  bool done = false;
  std::string path;  // empty for stdout / stderr
  int fd = -1;

  void run() noexcept {
    std::unique_lock lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return !queue.empty() || reopen || stopping; });
      if (reopen) {
        reopen = false;
        if (!path.empty()) {
          lock.unlock();
          reopen_file();
          lock.lock();
        }
      }
      if (queue.empty()) {
        if (stopping) break;
        continue;
      }
      std::string buffer = std::move(queue.front());
      queue.pop_front();
      queued_bytes -= buffer.size();
      lock.unlock();
      write_all(buffer);  // outside the lock: workers keep submitting meanwhile
      buffer.clear();
      lock.lock();
      if (spare.size() < 16) spare.push_back(std::move(buffer));
    }
    done = true;
    finished.notify_all();
  }

  void write_all(const std::string& buffer) noexcept {
    std::size_t off = 0;
    while (fd >= 0 && off < buffer.size()) {
      const ssize_t n = ::write(fd, buffer.data() + off, buffer.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // a full disk or a closed pipe must not take the proxy down: these lines are lost
      }
      off += static_cast<std::size_t>(n);
    }
  }

  void reopen_file() noexcept {
    const int next = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (next < 0) return;  // keep writing to the old file rather than nowhere
    ::close(fd);
    fd = next;
  }
};

std::unique_ptr<LogWriter> LogWriter::start(const config::AccessLogConfig& config, std::string& error) {
  auto state = std::make_shared<State>();
  if (config.destination == "stdout") {
    state->fd = STDOUT_FILENO;
  } else if (config.destination == "stderr") {
    state->fd = STDERR_FILENO;
  } else {
    state->path = config.destination;
    state->fd = ::open(config.destination.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (state->fd < 0) {
      error = "cannot open access log " + config.destination + ": " + std::strerror(errno);
      return nullptr;
    }
  }
  // The thread owns a reference: if stop() gives up on it, it can still finish safely.
  std::thread([state] { state->run(); }).detach();
  return std::unique_ptr<LogWriter>(new LogWriter(std::move(state)));
}

LogWriter::~LogWriter() { stop(std::chrono::milliseconds(2000)); }

bool LogWriter::submit(std::string& buffer) noexcept {
  std::lock_guard lock(state_->mutex);
  if (state_->stopping || state_->queued_bytes + buffer.size() > kMaxQueuedBytes) {
    buffer.clear();
    return false;
  }
  state_->queued_bytes += buffer.size();
  state_->queue.push_back(std::move(buffer));
  buffer = std::string();
  if (!state_->spare.empty()) {
    buffer = std::move(state_->spare.back());
    state_->spare.pop_back();
  }
  state_->wake.notify_one();
  return true;
}

void LogWriter::reopen() noexcept {
  std::lock_guard lock(state_->mutex);
  state_->reopen = true;
  state_->wake.notify_one();
}

void LogWriter::stop(std::chrono::milliseconds timeout) noexcept {
  std::unique_lock lock(state_->mutex);
  if (!state_->stopping) {
    state_->stopping = true;
    state_->wake.notify_one();
  }
  state_->finished.wait_for(lock, timeout, [&] { return state_->done; });
  if (state_->done && !state_->path.empty() && state_->fd >= 0) {
    ::close(state_->fd);
    state_->fd = -1;
  }
}

}  // namespace frontdoor::server
