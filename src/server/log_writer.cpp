#include "frontdoor/server/log_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace frontdoor::server {

namespace {

// Opened without blocking: a FIFO with no reader would hold the open (at start, or on the writer
// thread at a reopen) for as long as none comes; it fails with ENXIO instead. Writes block as usual.
int open_log(const std::string& path) noexcept {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

}  // namespace

std::atomic<std::uint64_t>& LogWriter::lost_lines_total() noexcept {
  static std::atomic<std::uint64_t> lost{0};
  return lost;
}

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
  bool mid_line = false;  // a failed write left the destination in the middle of a line
  std::chrono::steady_clock::time_point last_warning{};

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

  bool write_fully(std::string_view data, std::size_t& written) noexcept {
    written = 0;
    while (fd >= 0 && written < data.size()) {
      const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      written += static_cast<std::size_t>(n);
    }
    return fd >= 0;
  }

  // A full disk or a closed pipe must not take the proxy down: the lines that did not go out are
  // lost, but counted (access_log_dropped_lines) and logged; and a line cut short by the failure is
  // ended before the next buffer, which would otherwise be glued to it (a broken JSON line).
  void write_all(const std::string& buffer) noexcept {
    std::size_t written = 0;
    if (mid_line) {
      if (!write_fully("\n", written)) return lost(buffer, 0);
      mid_line = false;
    }
    if (write_fully(buffer, written)) return;
    if (written > 0 && buffer[written - 1] != '\n') mid_line = true;
    lost(buffer, written);
  }

  void lost(const std::string& buffer, std::size_t written) noexcept {
    const int error = errno;
    const auto lines = static_cast<std::uint64_t>(std::count(buffer.begin() + static_cast<std::ptrdiff_t>(written),
                                                             buffer.end(), '\n'));
    lost_lines_total().fetch_add(lines, std::memory_order_relaxed);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_warning >= std::chrono::minutes(1)) {
      last_warning = now;
      spdlog::warn("access log {}: write failed ({}): {} line(s) lost (fd_access_log_dropped_lines_total counts "
                   "them; warned at most once a minute)",
                   path.empty() ? std::string("stdout/stderr") : path, std::strerror(error), lines);
    }
  }

  void reopen_file() noexcept {
    const int next = open_log(path);
    if (next < 0) {
      // Keep writing to the old file rather than nowhere, and say so: its directory may be gone, and
      // logrotate may delete the file the lines still go to.
      spdlog::error("access log: cannot reopen {}: {}; still writing to the file opened before", path,
                    std::strerror(errno));
      return;
    }
    ::close(fd);
    fd = next;
    spdlog::info("access log: reopened {}", path);
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
    state->fd = open_log(config.destination);
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
