// Fuzz target: the request head parser and the chunked body scanner behind it.
// Invariants checked: no crash or overread (ASan), views stay inside the input, a complete head's
// framing is never ambiguous, and feeding the same bytes in two pieces gives the same verdict.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "frontdoor/http/message_head.hpp"

using namespace frontdoor;

namespace {

bool inside(std::string_view outer, std::string_view inner) {
  return inner.empty() || (inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const http::HeadLimits limits{256, 2048, 32};
  std::vector<http::Header> headers;
  headers.reserve(limits.max_header_count);
  http::RequestHead head;
  head.headers = &headers;
  http::HeadScanner scanner;
  Error error = Error::ok;
  const auto status = http::parse_request_head(input, limits, scanner, head, error);
  if (status == http::ParseStatus::complete) {
    if (head.head_bytes > size || !inside(input, head.method) || !inside(input, head.target)) std::abort();
    for (const auto& h : headers)
      if (!inside(input, h.name) || !inside(input, h.value)) std::abort();
    if (head.framing == http::BodyFraming::chunked && head.version == http::Version::http10) std::abort();
    // The body that follows, if chunked, goes through the scanner.
    if (head.framing == http::BodyFraming::chunked) {
      http::ChunkedScanner chunks(1 << 20);
      std::size_t payload = 0;
      const auto r = chunks.scan(input.substr(head.head_bytes), [&](const char*, std::size_t n) { payload += n; });
      if (r.consumed > size - head.head_bytes || payload > r.consumed) std::abort();
    }
  }
  // Split feeding: same verdict as all at once.
  if (size > 1) {
    http::HeadScanner split;
    Error split_error = Error::ok;
    const auto first = http::parse_request_head(input.substr(0, size / 2), limits, split, head, split_error);
    if (first == http::ParseStatus::incomplete) {
      const auto second = http::parse_request_head(input, limits, split, head, split_error);
      if (second != status || (status == http::ParseStatus::error && split_error != error)) std::abort();
    }
  }
  return 0;
}
