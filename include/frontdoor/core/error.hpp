#pragma once
// The frontdoor error category: every failure a request can meet, and the one table that maps it
// to the status the client gets, whether an upstream's breaker counts it, and its metric label.
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace frontdoor {

enum class Error : std::uint8_t {
  ok = 0,
  // Client side: the request is refused before any upstream sees it.
  bad_request,             // 400 malformed syntax
  smuggling_rejected,      // 400 ambiguous framing (RFC 9112 §6)
  missing_host,            // 400
  repeated_key_header,     // 400 a header a rate limit counts by comes more than once
  request_line_too_long,   // 414
  header_too_large,        // 431
  too_many_headers,        // 431
  body_too_large,          // 413
  unsupported_transfer_coding,  // 501
  unsupported_version,     // 505
  no_manifest,             // 404
  client_timeout,          // 408
  client_closed,           // no reply: the client went away
  // Upstream side.
  upstream_connect_failed,   // 502 refused / unreachable
  upstream_connect_timeout,  // 504
  upstream_reset,            // 502 closed or reset before a complete response
  upstream_bad_response,     // 502 unparsable response head
  unrelayable_response,      // 502 a sound response this client's HTTP version cannot carry
  upstream_timeout,          // 504 response did not come in time
  request_timeout,           // 504 the whole exchange took longer than timeouts.request_total
  rate_limited,              // 429 (Retry-After)
  no_healthy_upstream,       // 503 every endpoint of the manifest is open-circuited (Retry-After)
  overloaded,                // 503
  rate_limit_unavailable,    // 503 a global limit could not be checked and fails closed (Retry-After)
  upstream_overflow,         // 503 the manifest's max_connections are busy and max_pending are waiting
  internal,                  // 500
};

// Whether a failure says something about the upstream's health (the breaker counts these).
// not_sent: the request never reached the endpoint it was picked for (no connection slot, a hold that
// could not finish) — says nothing of that endpoint, like a client hanging up.
enum class FailureKind : std::uint8_t { none, client, not_sent, upstream_connect, upstream_timeout, upstream_protocol };

struct ErrorInfo {
  unsigned status;            // HTTP status of the local reply; 0 = no reply
  std::string_view reason;    // status reason phrase
  std::string_view message;   // one-line explanation for the reply body and logs
  std::string_view label;     // bounded metric label
  FailureKind failure_kind;
};

const ErrorInfo& error_info(Error e) noexcept;

const boost::system::error_category& frontdoor_category() noexcept;

inline boost::system::error_code make_error_code(Error e) noexcept {
  return {static_cast<int>(e), frontdoor_category()};
}

std::string_view reason_phrase(unsigned status) noexcept;

}  // namespace frontdoor

template <>
struct boost::system::is_error_code_enum<frontdoor::Error> : std::true_type {};
