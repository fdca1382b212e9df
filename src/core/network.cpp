#include "frontdoor/core/network.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace frontdoor {

std::array<std::uint8_t, 16> mapped_bytes(const boost::asio::ip::address& address) noexcept {
  if (address.is_v4()) return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4()).to_bytes();
  return address.to_v6().to_bytes();
}

std::size_t format_address(const boost::asio::ip::address& address, char* out, std::size_t size) noexcept {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.is_v4() || address.to_v6().is_v4_mapped()) {
    const auto bytes = address.is_v4() ? address.to_v4().to_bytes()
                                       : boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).to_bytes();
    ::inet_ntop(AF_INET, bytes.data(), text, sizeof text);
  } else {
    const auto bytes = address.to_v6().to_bytes();
    ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  }
  const std::size_t n = std::strlen(text);
  if (n > size) return 0;
  std::memcpy(out, text, n);
  return n;
}

std::optional<Network> Network::parse(std::string_view text) {
  const auto slash = text.find('/');
  const std::string host(text.substr(0, slash));
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (ec || host.find('%') != std::string::npos) return std::nullopt;  // no zone ids
  Network n;
  n.v4 = address.is_v4();
  const unsigned max = n.v4 ? 32 : 128;
  unsigned length = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (digits.empty() || err != std::errc() || end != digits.data() + digits.size() || length > max)
      return std::nullopt;
  }
  n.bytes = mapped_bytes(address);
  n.prefix = n.v4 ? 96 + length : length;
  return n;
}

bool Network::contains(const boost::asio::ip::address& address) const noexcept {
  const auto b = mapped_bytes(address);
  unsigned bits = prefix;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i, bits = bits >= 8 ? bits - 8 : 0) {
    const auto mask = static_cast<std::uint8_t>(bits >= 8 ? 0xff : 0xff << (8 - bits));
    if ((b[i] & mask) != (bytes[i] & mask)) return false;
  }
  return true;
}

bool NetworkSet::contains(const boost::asio::ip::address& address) const noexcept {
  for (const auto& n : networks_)
    if (n.contains(address)) return true;
  return false;
}

}  // namespace frontdoor
