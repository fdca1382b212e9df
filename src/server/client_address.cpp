#include "frontdoor/server/client_address.hpp"

#include <array>
#include <cstring>

namespace frontdoor::server {

bool parse_forwarded_entry(std::string_view entry, boost::asio::ip::address& out) noexcept {
  while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) entry.remove_prefix(1);
  while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) entry.remove_suffix(1);
  if (!entry.empty() && entry.front() == '[') {  // [v6] or [v6]:port
    const auto close = entry.find(']');
    if (close == std::string_view::npos) return false;
    entry = entry.substr(1, close - 1);
  } else if (entry.find(':') == entry.rfind(':') && entry.find(':') != std::string_view::npos) {
    entry = entry.substr(0, entry.find(':'));  // one colon: v4:port
  }
  std::array<char, 64> text{};
  if (entry.empty() || entry.size() >= text.size()) return false;
  std::memcpy(text.data(), entry.data(), entry.size());
  boost::system::error_code ec;
  out = boost::asio::ip::make_address(text.data(), ec);
  return !ec;
}

boost::asio::ip::address client_address(const boost::asio::ip::address& peer, const std::vector<http::Header>& headers,
                                         const NetworkSet& trusted) noexcept {
  if (trusted.empty() || !trusted.contains(peer)) return peer;
  boost::asio::ip::address client = peer;
  unsigned hops = 0;
  // The last X-Forwarded-For field first, each right to left.
  for (auto h = headers.rbegin(); h != headers.rend(); ++h) {
    if (h->kind != http::HeaderKind::x_forwarded_for) continue;
    std::string_view list = h->value;
    while (!list.empty()) {
      const auto comma = list.rfind(',');
      const std::string_view entry = comma == std::string_view::npos ? list : list.substr(comma + 1);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(0, comma);
      boost::asio::ip::address address;
      if (++hops > kMaxForwardedHops || !parse_forwarded_entry(entry, address)) return client;
      client = address;
      if (!trusted.contains(address)) return client;
    }
  }
  return client;  // every entry trusted: the left-most is as far as anyone can tell
}

}  // namespace frontdoor::server
