#pragma once
// LogWriter: the one thread that writes the access log. Workers hand it whole buffers of whole lines
// (AccessLog::flush); it writes them one after the other, so lines of different workers never
// interleave, and a worker never waits for the destination: when the writer is kMaxQueuedBytes
// behind (a stalled log collector on the other end of a stdout pipe, a slow disk), a buffer is
// dropped and its lines are counted instead. reopen() makes it reopen a file before its next write
// (logrotate). Any thread; the thread ends with stop().
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstddef>
#include <memory>
#include <string>

#include "frontdoor/config/config.hpp"

namespace frontdoor::server {

class LogWriter {
 public:
  static constexpr std::size_t kMaxQueuedBytes = 4 * 1024 * 1024;

  // Opens the destination ("stdout", "stderr" or a file) and starts the thread; null (and `error`
  // set) when the file cannot be opened.
  static std::unique_ptr<LogWriter> start(const config::AccessLogConfig& config, std::string& error);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Takes `buffer`'s bytes (leaving it empty, with the capacity of a recycled buffer): false when
  // the queue is full and they were dropped.
  bool submit(std::string& buffer) noexcept;
  // The file is reopened (same path, created if gone) before the next write.
  void reopen() noexcept;
  // Writes what is queued, waiting at most `timeout` for it; a thread still blocked in write(2) then
  // is left to finish or die with the process (a stalled pipe must not hold the exit).
  void stop(std::chrono::milliseconds timeout) noexcept;
  // Lines the writer could not write (a full disk, a closed pipe), whole process: the metrics add
  // them to the workers' dropped lines.
  static std::atomic<std::uint64_t>& lost_lines_total() noexcept;

  struct State;

 private:
  explicit LogWriter(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace frontdoor::server
