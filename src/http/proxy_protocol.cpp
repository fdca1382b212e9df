#include "frontdoor/http/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <string>

namespace frontdoor::http {

namespace {

constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr std::string_view kV1Prefix = "PROXY ";

// `data` is shorter than `whole` and could still become it.
bool is_prefix_of(std::string_view data, std::string_view whole) noexcept {
  return data.size() < whole.size() && whole.substr(0, data.size()) == data;
}

bool parse_port(std::string_view text, std::uint16_t& port) noexcept {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || text.size() > 5 || ec != std::errc() || end != text.data() + text.size() || value > 65535)
    return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n" or "PROXY UNKNOWN[ anything]\r\n".
ProxyHeaderStatus parse_v1(std::string_view data, ProxyHeader& out) noexcept {
  const auto crlf = data.substr(0, kMaxProxyV1Bytes).find("\r\n");
  if (crlf == std::string_view::npos)
    return data.size() >= kMaxProxyV1Bytes ? ProxyHeaderStatus::error : ProxyHeaderStatus::incomplete;
  std::string_view line = data.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
  out.bytes = crlf + 2;
  std::array<std::string_view, 5> fields{};
  std::size_t count = 0;
  while (!line.empty() && count < fields.size()) {
    const auto space = line.find(' ');
    fields[count++] = line.substr(0, space);
    if (space == std::string_view::npos) line = {};
    else line.remove_prefix(space + 1);
  }
  if (count >= 1 && fields[0] == "UNKNOWN") {
    out.local = true;
    return ProxyHeaderStatus::complete;
  }
  if (count != 5 || !line.empty() || (fields[0] != "TCP4" && fields[0] != "TCP6")) return ProxyHeaderStatus::error;
  boost::system::error_code ec;
  const auto source = boost::asio::ip::make_address(std::string(fields[1]), ec);
  if (ec || source.is_v4() != (fields[0] == "TCP4")) return ProxyHeaderStatus::error;
  const auto destination = boost::asio::ip::make_address(std::string(fields[2]), ec);
  std::uint16_t destination_port = 0;
  if (ec || destination.is_v4() != source.is_v4() || !parse_port(fields[3], out.source_port) ||
      !parse_port(fields[4], destination_port))
    return ProxyHeaderStatus::error;
  out.source = source;
  out.local = false;
  return ProxyHeaderStatus::complete;
}

ProxyHeaderStatus parse_v2(std::string_view data, ProxyHeader& out) noexcept {
  if (data.size() < 16) return ProxyHeaderStatus::incomplete;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const unsigned version = p[12] >> 4, command = p[12] & 0x0f;
  const std::size_t length = (std::size_t{p[14]} << 8) | p[15];
  if (version != 2 || command > 1 || 16 + length > kMaxProxyV2Bytes) return ProxyHeaderStatus::error;
  if (data.size() < 16 + length) return ProxyHeaderStatus::incomplete;
  out.bytes = 16 + length;
  out.local = true;
  if (command == 0) return ProxyHeaderStatus::complete;  // LOCAL: the balancer speaking for itself
  const unsigned family = p[13] >> 4, transport = p[13] & 0x0f;
  if (transport != 1) return ProxyHeaderStatus::complete;  // not TCP (UDP, unspecified): keep the peer
  if (family == 1) {  // IPv4: src, dst, src port, dst port
    if (length < 12) return ProxyHeaderStatus::error;
    boost::asio::ip::address_v4::bytes_type bytes;
    std::memcpy(bytes.data(), p + 16, 4);
    out.source = boost::asio::ip::address_v4(bytes);
    out.source_port = static_cast<std::uint16_t>((p[24] << 8) | p[25]);
    out.local = false;
  } else if (family == 2) {  // IPv6
    if (length < 36) return ProxyHeaderStatus::error;
    boost::asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), p + 16, 16);
    out.source = boost::asio::ip::address_v6(bytes);
    out.source_port = static_cast<std::uint16_t>((p[48] << 8) | p[49]);
    out.local = false;
  }
  return ProxyHeaderStatus::complete;  // unix sockets, unspecified: keep the peer
}

}  // namespace

ProxyHeaderStatus parse_proxy_header(std::string_view data, ProxyHeader& out) noexcept {
  out = ProxyHeader{};
  if (data.size() >= kV2Signature.size() && data.substr(0, kV2Signature.size()) == kV2Signature)
    return parse_v2(data, out);
  if (data.size() >= kV1Prefix.size() && data.substr(0, kV1Prefix.size()) == kV1Prefix) return parse_v1(data, out);
  if (is_prefix_of(data, kV2Signature) || is_prefix_of(data, kV1Prefix)) return ProxyHeaderStatus::incomplete;
  return ProxyHeaderStatus::error;
}

}  // namespace frontdoor::http
