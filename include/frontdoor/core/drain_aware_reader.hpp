#pragma once
// Receives that skip the system call bound to fail with EAGAIN.
//
// Asio's epoll reactor registers a socket once, edge-triggered, and tries every read at once
// ("speculatively") until a receive returns 0 bytes. A proxy that reads the next request, or re-arms
// an idle upstream connection, right after the last message was read whole thus pays one receive per
// request that finds nothing. A short receive already says the kernel's queue is empty (TCP copies
// all it has), as nginx assumes with EPOLLET: a receive into a DrainAwareBuffer that comes back short
// marks the socket drained, and the reactor waits for its next readiness edge before receiving again.
//
// New data always raises an edge. The end of the stream may not: a FIN that arrived with that data is
// consumed by the same receive, and the next receive returns 0 at once without any new edge. So a
// read that must notice the end now (in the middle of a message) receives once by hand first
// (ReadStart::at_once); a read that waits for a new message (ReadStart::on_readiness) needs no such
// try: a client that half-closed with its last request is closed by the idle timeout, and an upstream
// connection that did is found closed when reused (the stale-connection retry).
//
// The reactor half is an explicit specialisation of one Asio member for our buffer type only, so no
// other receive changes. It exists only where core/asio_internals.hpp allows (Boost 1.81, epoll);
// elsewhere the buffer is an ordinary one (kDrainAwareReceives is false) and reads are Asio's own.
#include <sys/socket.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstddef>
#include <utility>

#include "frontdoor/core/asio_internals.hpp"
#if FRONTDOOR_ASIO_INTERNALS
#include <boost/asio/detail/reactive_socket_recv_op.hpp>
#endif

namespace frontdoor::core {

// One contiguous buffer (a MutableBufferSequence, like asio::mutable_buffer).
struct DrainAwareBuffer : boost::asio::mutable_buffer {
  DrainAwareBuffer(void* data, std::size_t size) noexcept : mutable_buffer(data, size) {}
  bool wait_for_edge = false;  // skip the reactor's first try: only when an edge is certain (ReadStart::first)
};

inline constexpr bool kDrainAwareReceives = FRONTDOOR_ASIO_INTERNALS != 0;

// How a read begins; see the top of this file.
enum class ReadStart {
  on_readiness,  // waiting for a new message: when the socket is drained, wait for its next edge
  at_once,       // in the middle of a message: the end of the stream must be seen without delay
  // The first read of a socket just accepted (and registered with epoll after it was): whatever is
  // there already was reported when it was registered, so even the first try is left to the edge.
  // A client that connects and then sends costs no receive that finds nothing (nginx reads so too).
  first,
};

// One receive that never blocks: the bytes received; 0 with `ec` = eof at the end of the stream, or
// would_block when nothing is there.
inline std::size_t receive_now(int fd, boost::asio::mutable_buffer buffer, boost::system::error_code& ec) noexcept {
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n > 0) {
      ec.clear();
      return static_cast<std::size_t>(n);
    }
    if (n == 0) {
      ec = buffer.size() == 0 ? boost::system::error_code() : boost::asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) ec = boost::asio::error::would_block;
    else ec.assign(errno, boost::asio::error::get_system_category());
    return 0;
  }
}

// The reads of one stream socket (plain TCP). It remembers whether the last receive came back short,
// that is whether the reactor now waits for an edge and an end of stream may have been consumed.
// One per connection; reset() when the connection changes. Single-threaded, like its owner.
class DrainAwareReader {
 public:
  void reset() noexcept { end_may_be_consumed_ = false; }

  // Reads into `buffer` (which must stay valid until `handler(ec, n)` runs, never inline).
  template <class Socket, class Handler>
  void async_read_some(Socket& socket, boost::asio::mutable_buffer buffer, ReadStart start, Handler&& handler) {
    if (start == ReadStart::at_once && end_may_be_consumed_) {
      boost::system::error_code ec;
      const std::size_t n = receive_now(socket.native_handle(), buffer, ec);
      if (ec != boost::asio::error::would_block) {
        note(ec, n, buffer.size());
        boost::asio::post(socket.get_executor(),
                          [handler = std::forward<Handler>(handler), ec, n]() mutable { handler(ec, n); });
        return;
      }
    }
    DrainAwareBuffer drain_aware(buffer.data(), buffer.size());
    drain_aware.wait_for_edge = start == ReadStart::first;
    socket.async_read_some(drain_aware,
                           [this, asked = buffer.size(), handler = std::forward<Handler>(handler)](
                               const boost::system::error_code& ec, std::size_t n) mutable {
                             note(ec, n, asked);
                             handler(ec, n);
                           });
  }

 private:
  void note(const boost::system::error_code& ec, std::size_t received, std::size_t asked) noexcept {
    end_may_be_consumed_ = kDrainAwareReceives && !ec && received < asked;
  }

  bool end_may_be_consumed_ = false;
};

}  // namespace frontdoor::core

#if FRONTDOOR_ASIO_INTERNALS
namespace boost::asio::detail {

// Asio 1.81's own do_perform (reactive_socket_recv_op.hpp) with two changes: a short receive on a
// stream socket reports done_and_exhausted, which makes the epoll reactor clear try_speculative_
// for reads until the descriptor's next event (epoll_reactor.ipp, start_op and perform_io); and a
// buffer marked wait_for_edge declines the first try, so the operation is queued for the edge.
template <>
inline reactor_op::status reactive_socket_recv_op_base<frontdoor::core::DrainAwareBuffer>::do_perform(
    reactor_op* base) {
  auto* o = static_cast<reactive_socket_recv_op_base*>(base);
  if (o->buffers_.wait_for_edge) {
    o->buffers_.wait_for_edge = false;  // start_op's speculative try: queued with no system call
    return not_done;
  }
  const boost::asio::mutable_buffer& buffer = o->buffers_;
  const bool stream = (o->state_ & socket_ops::stream_oriented) != 0;
  if (!socket_ops::non_blocking_recv1(o->socket_, buffer.data(), buffer.size(), o->flags_, stream, o->ec_,
                                      o->bytes_transferred_))
    return not_done;
  return stream && o->bytes_transferred_ < buffer.size() ? done_and_exhausted : done;
}

}  // namespace boost::asio::detail
#endif
