#pragma once
// Asio treats a socket it did not open itself (an accepted one is "assigned") as possibly dup()ed
// elsewhere: closing it first removes it from epoll (EPOLL_CTL_DEL), lest a duplicate keep it
// registered. A client socket this process accepted is never duplicated, and the kernel drops a
// closed descriptor from epoll by itself: forgetting that mark saves one system call per
// connection. Only where core/asio_internals.hpp allows; a no-op elsewhere.
#include <boost/asio/ip/tcp.hpp>

#include "frontdoor/core/asio_internals.hpp"

namespace frontdoor::core {

namespace asio_access {
// Names the socket's protected implementation through a derived class: the pointer to member it
// yields may be applied to any tcp::socket (never constructed).
struct SocketImplementation : boost::asio::ip::tcp::socket {
  static constexpr auto member = &SocketImplementation::impl_;
};
}  // namespace asio_access

inline void forget_possible_dup(boost::asio::ip::tcp::socket& socket) noexcept {
#if FRONTDOOR_ASIO_INTERNALS
  auto& state = (socket.*asio_access::SocketImplementation::member).get_implementation().state_;
  state = static_cast<boost::asio::detail::socket_ops::state_type>(state & ~boost::asio::detail::socket_ops::possible_dup);
#else
  (void)socket;
#endif
}

}  // namespace frontdoor::core
