#include "frontdoor/server/access_log.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fmt/format.h>

#include "frontdoor/core/error.hpp"

namespace frontdoor::server {

namespace {

constexpr std::size_t kFlushAt = 32 * 1024;

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// Text lines quote the target; keep a line a line whatever the client sent.
void append_text_safe(std::string& out, std::string_view s) {
  for (char c : s) out.push_back((static_cast<unsigned char>(c) < 0x20 || c == '"') ? '?' : c);
}

double millis(pipeline::Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

AccessLog::~AccessLog() { flush(); }

void AccessLog::open(config::AccessLogFormat format, LogWriter* writer, stats::WorkerCounters* counters) {
  format_ = format;
  writer_ = writer;
  counters_ = counters;
  if (writer_ != nullptr) buffer_.reserve(kFlushAt + 4096);
}

void AccessLog::write(const AccessRecord& r) {
  const auto& ctx = r.ctx;
  const auto now = std::chrono::system_clock::now();
  const auto total = millis(r.finished - ctx.started);
  const double upstream_ms = ctx.upstream_started == pipeline::Clock::time_point{}
                                 ? -1.0
                                 : millis(r.finished - ctx.upstream_started);
  const std::string_view project = ctx.manifest ? std::string_view(ctx.manifest->project) : ctx.project;
  const std::string_view module = ctx.manifest ? std::string_view(ctx.manifest->module) : ctx.module;
  const std::string_view environment = ctx.manifest ? std::string_view(ctx.manifest->environment) : ctx.environment;
  const std::string_view error = error_info(ctx.outcome).label;
  const auto time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  if (format_ == config::AccessLogFormat::json) {
    fmt::format_to(std::back_inserter(buffer_), "{{\"time_ms\":{},\"request_id\":", time_ms);
    append_json_string(buffer_, ctx.request_id);
    buffer_ += ",\"client\":";
    append_json_string(buffer_, ctx.client_ip);
    buffer_ += ",\"method\":";
    append_json_string(buffer_, r.method);
    buffer_ += ",\"path\":";
    append_json_string(buffer_, r.target);
    buffer_ += ",\"project\":";
    append_json_string(buffer_, project);
    buffer_ += ",\"module\":";
    append_json_string(buffer_, module);
    buffer_ += ",\"environment\":";
    append_json_string(buffer_, environment);
    buffer_ += ",\"upstream\":";
    append_json_string(buffer_, r.upstream);
    fmt::format_to(std::back_inserter(buffer_),
                   ",\"status\":{},\"bytes_received\":{},\"bytes_sent\":{},\"duration_ms\":{:.3f},"
                   "\"upstream_ms\":{:.3f},\"error\":\"{}\"}}\n",
                   ctx.status, ctx.request_body_bytes, ctx.response_bytes, total, upstream_ms, error);
  } else {
    fmt::format_to(std::back_inserter(buffer_), "{} {} {} \"", time_ms, ctx.client_ip, ctx.request_id);
    append_text_safe(buffer_, r.method);
    buffer_.push_back(' ');
    append_text_safe(buffer_, r.target);
    fmt::format_to(std::back_inserter(buffer_), "\" {} {} {} ", ctx.status, ctx.request_body_bytes, ctx.response_bytes);
    // Without a manifest, the route's parts are the client's path segments: no quote may pass.
    append_text_safe(buffer_, project);
    buffer_.push_back('/');
    append_text_safe(buffer_, module);
    buffer_.push_back('/');
    append_text_safe(buffer_, environment);
    fmt::format_to(std::back_inserter(buffer_), " {} {:.3f}ms {:.3f}ms {}\n",
                   r.upstream.empty() ? std::string_view("-") : r.upstream, total, upstream_ms, error);
  }
  if (buffer_.size() >= kFlushAt) flush();
}

void AccessLog::flush() noexcept {
  if (writer_ == nullptr || buffer_.empty()) return;
  const auto lines = static_cast<std::uint64_t>(std::count(buffer_.begin(), buffer_.end(), '\n'));
  if (!writer_->submit(buffer_) && counters_ != nullptr)
    (*counters_)[stats::Counter::access_log_dropped_lines] += lines;
  if (buffer_.capacity() < kFlushAt) buffer_.reserve(kFlushAt + 4096);
}

}  // namespace frontdoor::server
