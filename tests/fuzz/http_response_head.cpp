// Fuzz target: the upstream response head parser and de-chunking relay logic.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "frontdoor/http/message_head.hpp"

using namespace frontdoor;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const http::HeadLimits limits{1024, 4096, 32};
  std::vector<http::Header> headers;
  headers.reserve(limits.max_header_count);
  http::ResponseHead head;
  head.headers = &headers;
  http::HeadScanner scanner;
  Error error = Error::ok;
  const bool head_request = size > 0 && (data[0] & 1);
  const auto status = http::parse_response_head(input, limits, scanner, head_request, head, error);
  if (status == http::ParseStatus::complete) {
    if (head.head_bytes > size || head.status < 100 || head.status > 999) std::abort();
    if (head_request && head.framing != http::BodyFraming::none) std::abort();
    if (head.framing == http::BodyFraming::chunked) {
      http::ChunkedScanner chunks;
      std::size_t payload = 0;
      const auto body = input.substr(head.head_bytes);
      // Byte-at-a-time must agree with all-at-once.
      const auto all = chunks.scan(body, [&](const char*, std::size_t n) { payload += n; });
      http::ChunkedScanner slow;
      std::size_t consumed = 0;
      bool done = false;
      Error slow_error = Error::ok;
      for (std::size_t i = 0; i < body.size() && !done && slow_error == Error::ok; ++i) {
        const auto r = slow.scan(body.substr(i, 1));
        consumed += r.consumed;
        done = r.done;
        slow_error = r.error;
      }
      if (all.error == Error::ok && slow_error == Error::ok && (all.done != done || all.consumed != consumed))
        std::abort();
      if (payload > all.consumed) std::abort();
    }
  } else if (status == http::ParseStatus::error && error != Error::upstream_bad_response) {
    std::abort();
  }
  return 0;
}
