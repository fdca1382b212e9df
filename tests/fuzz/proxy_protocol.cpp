// Fuzz target: the PROXY protocol header parser. Any bytes: complete, incomplete or error, never a
// crash; a complete header never claims more bytes than it was given, and a prefix of a complete
// header is never an error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "frontdoor/http/proxy_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace frontdoor::http;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ProxyHeader header;
  const auto status = parse_proxy_header(bytes, header);
  if (status != ProxyHeaderStatus::complete) return 0;
  if (header.bytes == 0 || header.bytes > size) {
    std::fprintf(stderr, "proxy_protocol: complete header of %zu bytes in %zu\n", header.bytes, size);
    std::abort();
  }
  for (std::size_t n = 0; n < header.bytes; ++n) {
    ProxyHeader partial;
    if (parse_proxy_header(bytes.substr(0, n), partial) == ProxyHeaderStatus::error) {
      std::fprintf(stderr, "proxy_protocol: a %zu-byte prefix of a complete header is an error\n", n);
      std::abort();
    }
  }
  return 0;
}
