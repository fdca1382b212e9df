#pragma once
// Strict, allocation-free HTTP/1.x head parsers (RFC 9112). Views point into the caller's buffer,
// which must outlive the head. Header storage is a caller-provided vector reserved once per
// connection: clear() between requests never allocates.
//
// The request parser is the smuggling defence: it accepts only CRLF line endings, no obs-fold, no
// whitespace before ':', a single valid Content-Length (identical duplicates allowed), and a
// Transfer-Encoding that is exactly "chunked" — never together with Content-Length.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "frontdoor/core/error.hpp"
#include "frontdoor/http/field_chars.hpp"

namespace frontdoor::http {

// Headers the proxy treats specially, recognised once while parsing so rewriting needs no string compare.
enum class HeaderKind : std::uint8_t {
  other,
  host,
  content_length,
  transfer_encoding,
  connection,
  keep_alive,
  proxy_connection,
  te,
  trailer,
  upgrade,
  expect,
  x_request_id,
  x_forwarded_for,
  x_forwarded_proto,
  x_forwarded_host,
  via,
  // Claims about the client or the URL that only a proxy we trust may make: passed on from a
  // trusted peer (listeners[].trusted_proxies), dropped from any other.
  forwarded_claim,  // Forwarded, X-Forwarded-Port/-Prefix/-Server/-Ssl, X-Original-URL, X-Rewrite-URL
  x_real_ip,        // always replaced by the client frontdoor identified
  // A name that CGI, WSGI and Rack read as one of the headers above ("X_Forwarded_For" is
  // HTTP_X_FORWARDED_FOR too): always dropped, as nginx drops every name with an underscore.
  underscore_alias,
};

struct Header {
  std::string_view name;
  std::string_view value;  // OWS trimmed
  HeaderKind kind;
};

enum class Version : std::uint8_t { http10, http11 };
enum class BodyFraming : std::uint8_t { none, content_length, chunked, until_close };

// Tokens of the Connection header: close / keep-alive, and the other names it lists (dropped as hop-by-hop).
struct ConnectionOptions {
  static constexpr std::size_t kMaxNamed = 16;
  bool close = false;
  bool keep_alive = false;
  std::uint8_t named_count = 0;
  std::array<std::string_view, kMaxNamed> named{};

  bool names(std::string_view header_name) const noexcept;
};

struct HeadLimits {
  std::uint32_t max_line_bytes;   // request line (414) / status line
  std::uint32_t max_head_bytes;   // whole head (431)
  std::uint32_t max_header_count; // (431)
};

enum class ParseStatus : std::uint8_t { complete, incomplete, error };

struct RequestHead {
  std::string_view method;
  std::string_view target;
  Version version = Version::http11;
  std::vector<Header>* headers = nullptr;  // owned by the session
  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  std::string_view host;
  std::string_view request_id;  // X-Request-Id as sent by the client, may be empty
  ConnectionOptions connection;
  bool expect_continue = false;  // HTTP/1.1 only: an HTTP/1.0 request's expectation is ignored
  // The client sent absolute-form ("http://host/path"): `target` is its path and query (origin-form,
  // which may lack its leading "/") and `host` its authority, which wins over the Host header
  // (RFC 9112 §3.2.2).
  bool absolute_form = false;
  // An HTTP/1.1 request without a body that asks to switch protocols (Connection: upgrade with an
  // Upgrade header): the Upgrade value, else empty.
  std::string_view upgrade;
  bool is_head = false;   // HEAD: response has no body
  std::uint32_t head_bytes = 0;  // bytes of the head including the final CRLF

  bool keep_alive() const noexcept {
    return version == Version::http11 ? !connection.close : connection.keep_alive && !connection.close;
  }
};

struct ResponseHead {
  unsigned status = 0;
  std::string_view reason;
  Version version = Version::http11;
  std::vector<Header>* headers = nullptr;
  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  ConnectionOptions connection;
  bool has_request_id = false;
  // The head frames its body two ways (Content-Length with Transfer-Encoding; a 204 with either):
  // where the body really ends is a guess, so the connection carries no further response.
  bool framing_doubtful = false;
  std::uint32_t head_bytes = 0;

  bool keep_alive() const noexcept {
    return version == Version::http11 ? !connection.close : connection.keep_alive && !connection.close;
  }
  bool reusable() const noexcept { return keep_alive() && !framing_doubtful; }
};

// Incremental use: call again with the grown buffer and the same `scan_from` (updated in place),
// so a head trickling in byte by byte is scanned once, not quadratically.
struct HeadScanner {
  std::uint32_t scanned = 0;  // bytes known not to contain the end of the head
  void reset() noexcept { scanned = 0; }
};

// On error, `error` says which (400/414/431/501/505 family). On incomplete, the caller reads more
// and must refuse when the buffer reaches limits (the parser reports the limit errors itself once
// the data seen already exceeds them).
ParseStatus parse_request_head(std::string_view data, const HeadLimits& limits, HeadScanner& scanner,
                               RequestHead& out, Error& error) noexcept;

// `request_was_head`: the request's method was HEAD (then the response has no body).
ParseStatus parse_response_head(std::string_view data, const HeadLimits& limits, HeadScanner& scanner,
                                bool request_was_head, ResponseHead& out, Error& error) noexcept;

bool iequals(std::string_view a, std::string_view b) noexcept;

// Whether a 101's Upgrade (`chosen`) names protocols, every one of them among those the request
// offered (`offered`, its own Upgrade): a server must say what it switched to, and may only switch
// to what was offered (RFC 9110 §7.8).
bool upgrade_was_offered(std::string_view offered, std::string_view chosen) noexcept;

// Streaming validator of chunked framing. Feed it bytes as they arrive; it says how many belong to
// the message (it stops at the end of the last chunk's trailer section) and, when asked, which of
// them are payload. Errors: malformed framing or chunk extensions over `max_trailer_bytes` in all
// (bad_request), trailers over it (header_too_large), payload over the limit (body_too_large).
class ChunkedScanner {
 public:
  explicit ChunkedScanner(std::uint64_t max_payload = 0, std::uint32_t max_trailer_bytes = 16384) noexcept
      : max_payload_(max_payload), max_trailer_bytes_(max_trailer_bytes) {}

  void reset() noexcept {
    state_ = State::size;
    chunk_left_ = 0;
    payload_total_ = 0;
    size_digits_ = 0;
    trailer_bytes_ = 0;
    trailer_name_seen_ = false;
  }

  struct Result {
    std::size_t consumed;  // bytes of `data` that belong to the message
    bool done;             // the message ended within them
    Error error;           // Error::ok unless malformed
  };

  // on_payload(const char*, size_t) is called for each run of payload bytes.
  template <class OnPayload>
  Result scan(std::string_view data, OnPayload&& on_payload) noexcept;
  Result scan(std::string_view data) noexcept {
    return scan(data, [](const char*, std::size_t) {});
  }

  std::uint64_t payload_total() const noexcept { return payload_total_; }
  bool done() const noexcept { return state_ == State::done; }

 private:
  enum class State : std::uint8_t { size, size_bws, extension, size_lf, data, data_cr, data_lf, trailer_start,
                                    trailer_name, trailer_value, trailer_lf, final_lf, done };
  State state_ = State::size;
  std::uint64_t chunk_left_ = 0;
  std::uint64_t payload_total_ = 0;
  std::uint64_t max_payload_;
  std::uint32_t max_trailer_bytes_;
  std::uint32_t trailer_bytes_ = 0;
  std::uint8_t size_digits_ = 0;
  bool trailer_name_seen_ = false;
};

template <class OnPayload>
ChunkedScanner::Result ChunkedScanner::scan(std::string_view data, OnPayload&& on_payload) noexcept {
  std::size_t i = 0;
  const std::size_t n = data.size();
  auto fail = [&](Error e) { return Result{i, false, e}; };
  while (i < n) {
    const char c = data[i];
    switch (state_) {
      case State::size: {
        int digit = -1;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        if (digit >= 0) {
          if (++size_digits_ > 15) return fail(Error::bad_request);  // > 2^60: nonsense
          chunk_left_ = chunk_left_ * 16 + static_cast<unsigned>(digit);
          ++i;
          break;
        }
        if (size_digits_ == 0) return fail(Error::bad_request);
        if (c == ';') { state_ = State::extension; ++i; break; }
        if (c == ' ' || c == '\t') { state_ = State::size_bws; ++i; break; }
        if (c == '\r') { state_ = State::size_lf; ++i; break; }
        return fail(Error::bad_request);
      }
      case State::size_bws:
        // BWS is allowed only before a chunk extension (RFC 9112 §7.1.1): "5 \r\n" is refused.
        if (c == ' ' || c == '\t') { ++i; break; }
        if (c == ';') { state_ = State::extension; ++i; break; }
        return fail(Error::bad_request);
      case State::extension:
        // chunk-ext is opaque to us, but must not hide a bare CR/LF or control byte. Extensions share
        // the trailers' byte budget over the whole message: "1;xxxx..." cannot stream without end.
        if (c == '\r') { state_ = State::size_lf; ++i; break; }
        if (++trailer_bytes_ > max_trailer_bytes_) return fail(Error::bad_request);
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return fail(Error::bad_request);
        ++i;
        break;
      case State::size_lf:
        if (c != '\n') return fail(Error::bad_request);
        ++i;
        size_digits_ = 0;
        if (chunk_left_ == 0) {
          state_ = State::trailer_start;
        } else {
          payload_total_ += chunk_left_;
          if (max_payload_ != 0 && payload_total_ > max_payload_) return fail(Error::body_too_large);
          state_ = State::data;
        }
        break;
      case State::data: {
        const std::size_t take = static_cast<std::size_t>(
            std::min<std::uint64_t>(chunk_left_, static_cast<std::uint64_t>(n - i)));
        on_payload(data.data() + i, take);
        i += take;
        chunk_left_ -= take;
        if (chunk_left_ == 0) state_ = State::data_cr;
        break;
      }
      case State::data_cr:
        if (c != '\r') return fail(Error::bad_request);
        state_ = State::data_lf;
        ++i;
        break;
      case State::data_lf:
        if (c != '\n') return fail(Error::bad_request);
        state_ = State::size;
        ++i;
        break;
      case State::trailer_start:
        if (c == '\r') { state_ = State::final_lf; ++i; break; }
        state_ = State::trailer_name;
        break;
      // A trailer line is a field line (token ":" field-value), as strict as a head's: the bytes go
      // on to the upstream, and one that reads them loosely must not find a request line there.
      case State::trailer_name:
        if (++trailer_bytes_ > max_trailer_bytes_) return fail(Error::header_too_large);
        if (c == ':' && trailer_name_seen_) { state_ = State::trailer_value; ++i; break; }
        if (!kTokenChar[static_cast<unsigned char>(c)]) return fail(Error::bad_request);
        trailer_name_seen_ = true;
        ++i;
        break;
      case State::trailer_value:
        if (++trailer_bytes_ > max_trailer_bytes_) return fail(Error::header_too_large);
        if (c == '\r') { state_ = State::trailer_lf; trailer_name_seen_ = false; ++i; break; }
        if (!kValueChar[static_cast<unsigned char>(c)]) return fail(Error::bad_request);
        ++i;
        break;
      case State::trailer_lf:
        if (c != '\n') return fail(Error::bad_request);
        state_ = State::trailer_start;
        ++i;
        break;
      case State::final_lf:
        if (c != '\n') return fail(Error::bad_request);
        state_ = State::done;
        ++i;
        return Result{i, true, Error::ok};
      case State::done:
        return Result{i, true, Error::ok};
    }
  }
  return Result{i, state_ == State::done, Error::ok};
}

}  // namespace frontdoor::http
