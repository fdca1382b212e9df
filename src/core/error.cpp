#include "frontdoor/core/error.hpp"

#include <array>
#include <string>

namespace frontdoor {
namespace {

constexpr std::array<ErrorInfo, static_cast<std::size_t>(Error::internal) + 1> kErrorTable{{
    {0, "", "ok", "ok", FailureKind::none},
    {400, "Bad Request", "malformed request", "bad_request", FailureKind::client},
    {400, "Bad Request", "ambiguous request framing rejected", "smuggling", FailureKind::client},
    {400, "Bad Request", "HTTP/1.1 request without Host header", "missing_host", FailureKind::client},
    {400, "Bad Request", "a header a rate limit counts by is repeated", "repeated_key_header", FailureKind::client},
    {414, "URI Too Long", "request line too long", "request_line_too_long", FailureKind::client},
    {431, "Request Header Fields Too Large", "request header block too large", "header_too_large",
     FailureKind::client},
    {431, "Request Header Fields Too Large", "too many request header fields", "too_many_headers",
     FailureKind::client},
    {413, "Content Too Large", "request body too large", "body_too_large", FailureKind::client},
    {501, "Not Implemented", "transfer coding not supported", "unsupported_transfer_coding",
     FailureKind::client},
    {505, "HTTP Version Not Supported", "HTTP version not supported", "unsupported_version",
     FailureKind::client},
    {404, "Not Found", "no manifest for this request", "no_manifest", FailureKind::none},
    {408, "Request Timeout", "client too slow", "client_timeout", FailureKind::client},
    {0, "", "client closed the connection", "client_closed", FailureKind::client},
    {502, "Bad Gateway", "upstream connection failed", "upstream_connect_failed", FailureKind::upstream_connect},
    {504, "Gateway Timeout", "upstream connect timed out", "upstream_connect_timeout",
     FailureKind::upstream_connect},
    {502, "Bad Gateway", "upstream closed the connection before a complete response", "upstream_reset",
     FailureKind::upstream_protocol},
    {502, "Bad Gateway", "upstream sent an invalid response", "upstream_bad_response",
     FailureKind::upstream_protocol},
    // Says nothing of the endpoint (an HTTP/1.1 client gets the same response): the breaker and
    // the outlier detector leave it alone.
    {502, "Bad Gateway", "the response cannot be relayed in the request's HTTP version", "unrelayable_response",
     FailureKind::client},
    {504, "Gateway Timeout", "upstream response timed out", "upstream_timeout", FailureKind::upstream_timeout},
    {504, "Gateway Timeout", "request exceeded its total time limit", "request_timeout",
     FailureKind::upstream_timeout},
    {429, "Too Many Requests", "rate limit exceeded", "rate_limited", FailureKind::none},
    {503, "Service Unavailable", "no healthy upstream: every endpoint's circuit is open", "no_healthy_upstream",
     FailureKind::none},
    {503, "Service Unavailable", "overloaded", "overloaded", FailureKind::none},
    {503, "Service Unavailable", "rate limit store unavailable", "rate_limit_unavailable", FailureKind::not_sent},
    {503, "Service Unavailable", "upstream connection limit reached", "upstream_overflow", FailureKind::not_sent},
    {500, "Internal Server Error", "internal error", "internal", FailureKind::none},
}};

class FrontdoorCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "frontdoor"; }
  std::string message(int ev) const override {
    if (ev < 0 || static_cast<std::size_t>(ev) >= kErrorTable.size()) return "unknown frontdoor error";
    return std::string(kErrorTable[static_cast<std::size_t>(ev)].message);
  }
};

}  // namespace

const ErrorInfo& error_info(Error e) noexcept { return kErrorTable[static_cast<std::size_t>(e)]; }

const boost::system::error_category& frontdoor_category() noexcept {
  static const FrontdoorCategory category;
  return category;
}

std::string_view reason_phrase(unsigned status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace frontdoor
