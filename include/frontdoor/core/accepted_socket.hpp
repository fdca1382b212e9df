#pragma once
// Accepting a client connection with no system call beyond accept itself.
//
// Asio accepts with accept(2): the new socket is blocking, so making it non-blocking costs an
// ioctl(FIONBIO) per connection. It also treats an accepted ("assigned") socket as possibly dup()ed
// elsewhere, so closing one costs an EPOLL_CTL_DEL first. Listeners accept into an AcceptedSocket, a
// socket type of its own (its executor type is the io_context's): for it alone, one Asio member is
// specialised to accept with accept4(SOCK_NONBLOCK | SOCK_CLOEXEC), and adopt_accepted() records in
// the socket's state that it is non-blocking and never duplicated, then hands it over as a plain
// tcp::socket. Only where core/asio_internals.hpp allows; elsewhere adopt_accepted() sets the mode
// the ordinary way and nothing is saved.
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>

#include "frontdoor/core/asio_internals.hpp"
#if FRONTDOOR_ASIO_INTERNALS
#include <boost/asio/detail/reactive_socket_accept_op.hpp>
#endif

namespace frontdoor::core {

using AcceptedSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

namespace asio_access {
// Names a socket's protected implementation through a derived class: the pointer to member it
// yields may be applied to any socket of that type (the class is never constructed).
template <class Socket>
struct SocketImplementation : Socket {
  static constexpr auto member = &SocketImplementation::impl_;
};

template <class Socket>
auto& state_of(Socket& socket) noexcept {
  return (socket.*SocketImplementation<Socket>::member).get_implementation().state_;
}
}  // namespace asio_access

// The accepted connection as the tcp::socket the rest of the proxy uses, non-blocking for
// synchronous calls too (try_write).
inline boost::asio::ip::tcp::socket adopt_accepted(AcceptedSocket&& accepted) {
#if FRONTDOOR_ASIO_INTERNALS
  namespace ops = boost::asio::detail::socket_ops;
  auto& state = asio_access::state_of(accepted);
  state = static_cast<ops::state_type>((state | ops::user_set_non_blocking | ops::internal_non_blocking) &
                                       ~ops::possible_dup);
#else
  boost::system::error_code ignored;
  accepted.non_blocking(true, ignored);
#endif
  return boost::asio::ip::tcp::socket(std::move(accepted));
}

}  // namespace frontdoor::core

#if FRONTDOOR_ASIO_INTERNALS
namespace boost::asio::detail {

// Asio 1.81's own do_perform (reactive_socket_accept_op.hpp, socket_ops::non_blocking_accept) with
// accept4 and its flags in place of accept.
template <>
inline reactor_op::status reactive_socket_accept_op_base<
    basic_socket<ip::tcp, io_context::executor_type>, ip::tcp>::do_perform(reactor_op* base) {
  auto* o = static_cast<reactive_socket_accept_op_base*>(base);
  for (;;) {
    socklen_t length = static_cast<socklen_t>(o->addrlen_);
    const int fd = ::accept4(o->socket_, o->peer_endpoint_ ? o->peer_endpoint_->data() : nullptr,
                             o->peer_endpoint_ ? &length : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      o->addrlen_ = length;
      o->ec_ = boost::system::error_code();
      o->new_socket_.reset(fd);
      return done;
    }
    const int error = errno;
    if (error == EINTR) continue;
    o->ec_ = boost::system::error_code(error, boost::asio::error::get_system_category());
    if (error == EAGAIN || error == EWOULDBLOCK) return not_done;
    if (error == ECONNABORTED || error == EPROTO)
      return (o->state_ & socket_ops::enable_connection_aborted) ? done : not_done;
    return done;
  }
}

}  // namespace boost::asio::detail
#endif
