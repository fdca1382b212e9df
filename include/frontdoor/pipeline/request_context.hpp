#pragma once
// RequestContext: what the pipeline stages know about one request. Owned by its session and reset,
// not reallocated, for each request on the connection. Views point into the session's buffers.
#include <array>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "frontdoor/core/error.hpp"
#include "frontdoor/http/message_head.hpp"
#include "frontdoor/manifest/manifest.hpp"
#include "frontdoor/core/waiter.hpp"
#include "frontdoor/resilience/rate_limiter.hpp"

namespace frontdoor::snapshot {
struct Snapshot;
}

namespace frontdoor::pipeline {

enum class Verdict : std::uint8_t {
  Continue,  // next stage
  Reply,     // the stage set `reply`: answer locally, do not proxy
  Suspend,   // the stage started async work and will resume the context
};

using Clock = std::chrono::steady_clock;

// Endpoints (indices into the manifest's list) that already failed an attempt of one request. A
// request makes at most 10 attempts (retries.max_attempts), so a short list: any index, however
// many endpoints a manifest has (a bitmask stopped at 64, and retries went back to the same one).
class TriedEndpoints {
 public:
  bool contains(std::uint32_t index) const noexcept {
    for (std::uint8_t i = 0; i < count_; ++i)
      if (items_[i] == index) return true;
    return false;
  }
  void add(std::uint32_t index) noexcept {
    if (count_ < items_.size() && !contains(index)) items_[count_++] = index;
  }
  void clear() noexcept { count_ = 0; }
  std::size_t size() const noexcept { return count_; }

 private:
  std::array<std::uint32_t, 16> items_{};
  std::uint8_t count_ = 0;
};

struct RequestContext {
  // Set by the session before the pipeline runs.
  const snapshot::Snapshot* snapshot = nullptr;
  const http::RequestHead* request = nullptr;
  // The client: the connection's peer, or who a trusted proxy says it is (X-Forwarded-For).
  std::string_view client_ip;
  boost::asio::ip::address client_address;
  // The connection's peer (after a PROXY protocol header, the address it names): X-Forwarded-For
  // gets it appended.
  std::string_view peer_ip;
  bool peer_trusted = false;  // the peer is one of the listener's trusted_proxies: its forwarded claims pass
  std::string_view default_environment;
  std::span<const std::string> allowed_environments;  // the environment header may choose these ("*": any)
  std::string_view request_id;  // the client's valid X-Request-Id, or one generated for this request
  Clock::time_point started;
  // The stages' clock: set by the session before it runs them (tests set it by hand).
  Clock::time_point now;

  // Set by the stages.
  std::string_view project, module, environment;
  const manifest::Manifest* manifest = nullptr;
  const manifest::EndpointSpec* endpoint = nullptr;
  std::uint32_t endpoint_index = 0;  // of `endpoint` in manifest->endpoints
  TriedEndpoints tried;              // endpoints that already failed an attempt of this request
  std::uint32_t attempt = 0;         // 0 for the first try
  bool attempt_reported = false;     // this attempt's outcome already went to the breaker
  bool holds_request_slot = false;   // counted in its cluster's max_requests
  bool holds_retry_slot = false;     // counted in its cluster's max_active_retries
  Error reply = Error::ok;  // with Verdict::Reply: what to answer
  std::uint32_t retry_after_seconds = 0;  // with Verdict::Reply: Retry-After, 0 = none
  std::uint8_t stage_next = 0;  // the pipeline resumes here (the stage that said Suspend)
  // A rate limit stage's progress, kept while a global limit waits for Redis (Verdict::Suspend).
  std::uint8_t limit_next = 0;      // first limit not applied yet
  std::int16_t limit_tightest = -1;  // the limit closest to refusing so far, and its decision
  resilience::LimitDecision limit_decision;
  Waiter lease_waiter;  // the session sets wake/owner once
  // The manifest stage waited for the store: on resuming, the session pins the worker's newest
  // snapshot (it holds what was fetched) and the stage does not wait again.
  bool manifest_waited = false;
  bool index_waited = false;  // for the store's index, just after start (then the key may wait too)
  bool repin_snapshot = false;
  // Leaky-bucket limits: hold the request until then before proxying (a time, not a delay, so that a
  // wait for Redis in between counts towards it).
  Clock::time_point shape_until{};
  // For the legacy X-RateLimit-* trio: the limit closest to refusing over both rate limit stages.
  std::uint32_t legacy_limit = 0;  // its quota; 0 = no limit applied
  std::uint64_t legacy_remaining = 0;
  std::uint64_t legacy_reset_seconds = 0;
  // Header lines ("Name: value\r\n"...) every response to this request carries (RateLimit fields).
  std::array<char, 512> response_headers{};
  std::uint16_t response_headers_size = 0;
  std::string_view extra_response_headers() const noexcept {
    return {response_headers.data(), response_headers_size};
  }
  // Where the sticky Set-Cookie line sits in response_headers, so that a retry's new pick replaces
  // it instead of adding a second cookie; sticky_cookie_size 0 = none.
  std::uint16_t sticky_cookie_at = 0;
  std::uint16_t sticky_cookie_size = 0;
  void erase_sticky_cookie() noexcept {
    if (sticky_cookie_size == 0) return;
    const std::size_t end = sticky_cookie_at + sticky_cookie_size;
    std::memmove(response_headers.data() + sticky_cookie_at, response_headers.data() + end, response_headers_size - end);
    response_headers_size = static_cast<std::uint16_t>(response_headers_size - sticky_cookie_size);
    sticky_cookie_size = 0;
  }

  // Outcome, filled as the exchange goes; on_complete reads it.
  Error outcome = Error::ok;
  unsigned status = 0;
  std::uint64_t request_body_bytes = 0;
  std::uint64_t response_bytes = 0;  // bytes written to the client (head + body)
  Clock::time_point upstream_started{};
  Clock::time_point response_started{};  // first byte of the upstream's response head

  void reset() noexcept {
    manifest = nullptr;
    endpoint = nullptr;
    endpoint_index = 0;
    tried.clear();
    attempt_reported = false;
    holds_request_slot = holds_retry_slot = false;
    retry_after_seconds = 0;
    response_headers_size = 0;
    sticky_cookie_size = 0;
    stage_next = 0;
    limit_next = 0;
    limit_tightest = -1;
    legacy_limit = 0;
    shape_until = {};
    lease_waiter.unlink();
    manifest_waited = index_waited = repin_snapshot = false;
    project = module = environment = {};
    attempt = 0;
    reply = Error::ok;
    outcome = Error::ok;
    status = 0;
    request_body_bytes = 0;
    response_bytes = 0;
    upstream_started = response_started = Clock::time_point{};
  }
};

}  // namespace frontdoor::pipeline
