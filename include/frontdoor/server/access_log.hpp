#pragma once
// AccessLog: one line per request, text or JSON lines, buffered per worker and written with one
// write(2) when the buffer fills or on the worker's 100 ms tick — no lock, no allocation per line.
// Worker thread only; each worker has its own, all appending (O_APPEND) to the same destination.
#include <string>
#include <string_view>

#include "frontdoor/config/config.hpp"
#include "frontdoor/pipeline/request_context.hpp"

namespace frontdoor::server {

struct AccessRecord {
  const pipeline::RequestContext& ctx;
  std::string_view method;
  std::string_view target;
  std::string_view upstream;  // endpoint name, empty when not proxied
  pipeline::Clock::time_point finished;
};

class AccessLog {
 public:
  AccessLog() = default;
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Opens the destination; returns an error message or empty. "off" disables.
  std::string open(const config::AccessLogConfig& config);
  bool enabled() const noexcept { return fd_ >= 0; }
  void write(const AccessRecord& record);
  void flush() noexcept;

 private:
  int fd_ = -1;
  bool owns_fd_ = false;
  config::AccessLogFormat format_ = config::AccessLogFormat::text;
  std::string buffer_;
};

}  // namespace frontdoor::server
