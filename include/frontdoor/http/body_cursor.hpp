#pragma once
// BodyCursor: how much of a request body has been handed on. From the bytes received it takes those
// that belong to the body — a Content-Length body up to what is left, a chunked one through the
// ChunkedScanner (framing and size checked) — and says when the body is complete.
// Owned by a client session, reset per request. Worker thread only.
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "frontdoor/core/error.hpp"
#include "frontdoor/http/message_head.hpp"

namespace frontdoor::http {

class BodyCursor {
 public:
  void start(BodyFraming framing, std::uint64_t content_length, std::uint64_t max_payload,
             std::uint32_t max_trailer_bytes) noexcept {
    framing_ = framing;
    left_ = content_length;
    chunks_ = ChunkedScanner(max_payload, max_trailer_bytes);
    done_ = framing == BodyFraming::none || (framing == BodyFraming::content_length && content_length == 0);
  }
  // A request whose head could not be parsed: what follows it is never a complete body.
  void distrust() noexcept { done_ = false; }

  struct Take {
    std::size_t bytes;  // the first `bytes` of `available` are body
    Error error;        // bad chunked framing, or over max_body_bytes
  };
  Take take(std::string_view available) noexcept {
    switch (framing_) {
      case BodyFraming::content_length: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(available.size(), left_));
        left_ -= n;
        done_ = left_ == 0;
        return {n, Error::ok};
      }
      case BodyFraming::chunked: {
        const auto r = chunks_.scan(available);
        done_ = r.done;
        return {r.consumed, r.error};
      }
      case BodyFraming::none:
      case BodyFraming::until_close: return {0, Error::ok};
    }
    return {0, Error::ok};
  }

  bool done() const noexcept { return done_; }
  bool has_body() const noexcept { return framing_ != BodyFraming::none; }

 private:
  BodyFraming framing_ = BodyFraming::none;
  std::uint64_t left_ = 0;
  ChunkedScanner chunks_;
  bool done_ = true;
};

}  // namespace frontdoor::http
