#pragma once
// Who the client is, for one request: the connection's peer (after a PROXY protocol header, the
// address it names) — or, when that peer is a trusted proxy, the right-most X-Forwarded-For entry
// that is not itself trusted. Entries are examined right to left, at most kMaxForwardedHops; one that
// is not an address ends the walk at the last trusted one (a proxy we trust writes addresses; what
// lies further left was written by the client and proves nothing). Pure; any thread.
#include <boost/asio/ip/address.hpp>
#include <vector>

#include "frontdoor/core/network.hpp"
#include "frontdoor/http/message_head.hpp"

namespace frontdoor::server {

inline constexpr unsigned kMaxForwardedHops = 32;

boost::asio::ip::address client_address(const boost::asio::ip::address& peer, const std::vector<http::Header>& headers,
                                         const NetworkSet& trusted) noexcept;

// One X-Forwarded-For entry as an address: "192.0.2.1", "192.0.2.1:8080", "2001:db8::1",
// "[2001:db8::1]:443". False when it is none of these.
bool parse_forwarded_entry(std::string_view entry, boost::asio::ip::address& out) noexcept;

}  // namespace frontdoor::server
