#pragma once
// The PROXY protocol, v1 (text) and v2 (binary), as a TCP load balancer (AWS NLB, HAProxy) sends it
// at the start of a connection: the address of the client as the balancer saw it. Parsed from the
// connection's first bytes, before the HTTP request (which may follow in the same read).
// Pure: no I/O, no allocation except to parse a v1 address. Any thread.
#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace frontdoor::http {

enum class ProxyHeaderStatus : std::uint8_t { complete, incomplete, error };

struct ProxyHeader {
  std::size_t bytes = 0;  // the header's length: the HTTP request starts after it
  // v1 UNKNOWN, v2 LOCAL (the balancer's own health check), or a family other than TCP over IPv4 or
  // IPv6: the connection's own peer address stands.
  bool local = false;
  boost::asio::ip::address source;
  std::uint16_t source_port = 0;
};

inline constexpr std::size_t kMaxProxyV1Bytes = 107;   // the spec's worst case, CRLF included
inline constexpr std::size_t kMaxProxyV2Bytes = 4096;  // 16-byte preamble + addresses + TLVs

// `error`: not a PROXY header (a client speaking HTTP straight to a listener that expects one),
// malformed, or longer than the limits above.
ProxyHeaderStatus parse_proxy_header(std::string_view data, ProxyHeader& out) noexcept;

}  // namespace frontdoor::http
