#pragma once
// Serialises the heads the proxy sends: the upstream request, the client response, and local replies.
// Writes into a caller-provided buffer (the worker's scratch), never allocates; returns 0 when the
// head does not fit (the caller answers 431 / 502 instead).
#include <cstdint>
#include <cstring>
#include <string_view>

#include "frontdoor/core/error.hpp"
#include "frontdoor/http/message_head.hpp"

namespace frontdoor::proxy {

class BufferWriter {
 public:
  BufferWriter(char* out, std::size_t capacity) noexcept : begin_(out), pos_(out), end_(out + capacity) {}

  BufferWriter& operator<<(std::string_view s) noexcept {
    if (s.empty()) return *this;  // an empty view may carry a null pointer: no memcpy
    if (static_cast<std::size_t>(end_ - pos_) < s.size()) {
      overflow_ = true;
      return *this;
    }
    std::memcpy(pos_, s.data(), s.size());
    pos_ += s.size();
    return *this;
  }
  BufferWriter& operator<<(std::uint64_t v) noexcept;

  std::size_t size() const noexcept { return overflow_ ? 0 : static_cast<std::size_t>(pos_ - begin_); }

 private:
  char* begin_;
  char* pos_;
  char* end_;
  bool overflow_ = false;
};

struct UpstreamRequestParams {
  std::string_view target_prefix;  // "/" when the stripped target does not start with one
  std::string_view target;         // possibly with the route prefix stripped
  std::string_view client_ip;
  std::string_view request_id;
  std::string_view proto;        // "http" or "https"
  std::string_view default_host; // Host for HTTP/1.0 requests that sent none (the endpoint's name)
  bool drop_expect;              // we answer 100-continue ourselves
  std::string_view upgrade{};    // offered to the upstream (Connection: upgrade + Upgrade), else empty
  std::string_view real_client_ip{};  // X-Real-IP: the client identified (trusted proxies' X-Forwarded-For)
  bool peer_trusted = false;     // the peer is a trusted proxy: its forwarded claims pass
};

// Hop-by-hop fields (RFC 9110 §7.6.1) and those named in Connection are removed; framing is
// re-stated; X-Forwarded-For appended; X-Forwarded-Proto/-Host, X-Real-IP and X-Request-Id set; Via
// appended; forwarded claims dropped unless the peer is trusted (HeaderKind::forwarded_claim).
std::size_t write_upstream_request_head(const http::RequestHead& request, const UpstreamRequestParams& params,
                                        char* out, std::size_t capacity) noexcept;

// How the response body travels to the client.
enum class ClientFraming : std::uint8_t {
  none,             // no body (HEAD, 1xx, 204, 304) — Content-Length passed through as the upstream sent it
  content_length,   // Content-Length: n, body relayed as is
  chunked,          // chunked relayed as is (HTTP/1.1 client)
  until_close,      // raw bytes then close (HTTP/1.0 client of a chunked response: de-chunked)
};

struct ClientResponseParams {
  std::string_view request_id;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines the proxy adds (RateLimit fields)
  ClientFraming framing;
  bool close;             // we will close the client connection after this response
  bool client_http10;     // announce keep-alive explicitly
  bool upgrade = false;   // a 101 switching protocols: its Upgrade header and Connection: upgrade go on
};

std::size_t write_client_response_head(const http::ResponseHead& response, const ClientResponseParams& params,
                                       char* out, std::size_t capacity) noexcept;

// Whether the response's body carries a transfer coding besides its framing "chunked" (gzip, ...):
// one an HTTP/1.0 client cannot be told about (RFC 9112 §6.1), so it cannot be relayed to one.
bool has_other_transfer_codings(const http::ResponseHead& response) noexcept;

// A complete local reply: status line, text/plain body "<status> <reason>: <message> (request id <id>)".
// `retry_after_seconds` > 0 adds Retry-After.
std::size_t write_local_reply(Error error, std::string_view detail, std::string_view request_id, bool close,
                              bool head_only, char* out, std::size_t capacity,
                              std::uint32_t retry_after_seconds = 0, std::string_view extra_headers = {}) noexcept;

}  // namespace frontdoor::proxy
