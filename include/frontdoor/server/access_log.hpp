#pragma once
// AccessLog: one line per request, text or JSON lines, buffered per worker and handed whole to the
// process's LogWriter thread when the buffer fills or on the worker's 100 ms tick — no lock and no
// allocation per line, and no write(2) on the worker: a stalled destination drops lines (counted as
// access_log_dropped_lines), it never stalls requests. Worker thread only; each worker has its own.
#include <string>
#include <string_view>

#include "frontdoor/config/config.hpp"
#include "frontdoor/pipeline/request_context.hpp"
#include "frontdoor/server/log_writer.hpp"
#include "frontdoor/stats/counters.hpp"

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

  // Lines go to `writer` (null: off); lines it cannot take are counted in `counters`.
  void open(config::AccessLogFormat format, LogWriter* writer, stats::WorkerCounters* counters);
  bool enabled() const noexcept { return writer_ != nullptr; }
  void write(const AccessRecord& record);
  void flush() noexcept;

 private:
  LogWriter* writer_ = nullptr;
  stats::WorkerCounters* counters_ = nullptr;
  config::AccessLogFormat format_ = config::AccessLogFormat::text;
  std::string buffer_;
};

}  // namespace frontdoor::server
