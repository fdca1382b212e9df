#pragma once
// Networks in CIDR notation ("10.0.0.0/8", "2001:db8::/32", a bare address = one host) and a set of
// them to test an address against: the trusted proxies of a listener. An IPv4-mapped IPv6 address
// (::ffff:10.1.2.3) matches the IPv4 networks. Immutable once built; any thread.
#include <boost/asio/ip/address.hpp>
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace frontdoor {

struct Network {
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the last 4 bytes, as ::ffff:a.b.c.d
  unsigned prefix = 0;                   // bits of `bytes` that must match (IPv4: 96 + its length)
  bool v4 = false;

  // "a.b.c.d[/n]" or "x:y::z[/n]"; nullopt when malformed or the length is out of range.
  static std::optional<Network> parse(std::string_view text);
  bool contains(const boost::asio::ip::address& address) const noexcept;
};

class NetworkSet {
 public:
  NetworkSet() = default;
  explicit NetworkSet(std::vector<Network> networks) : networks_(std::move(networks)) {}
  bool empty() const noexcept { return networks_.empty(); }
  bool contains(const boost::asio::ip::address& address) const noexcept;

 private:
  std::vector<Network> networks_;
};

// The address as text into `out` (an IPv4-mapped IPv6 address as plain IPv4), without allocating.
// Returns the length written (0 if `size` is too small; 46 always suffices).
std::size_t format_address(const boost::asio::ip::address& address, char* out, std::size_t size) noexcept;

// The address as 16 bytes, IPv4 mapped into IPv6 (so one comparison serves both families).
std::array<std::uint8_t, 16> mapped_bytes(const boost::asio::ip::address& address) noexcept;

}  // namespace frontdoor
