// Closing an accepted socket without EPOLL_CTL_DEL once it is known not to be duplicated.
//
// This binary defines epoll_ctl() (the call Asio's reactor makes): it counts EPOLL_CTL_DEL on one
// descriptor, then makes the system call itself.
#include "frontdoor/core/accepted_socket.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>

namespace {
std::atomic<int> watched_fd{-1};
std::atomic<int> removals{0};
}  // namespace

extern "C" int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  if (op == EPOLL_CTL_DEL && fd == watched_fd.load()) ++removals;
  return static_cast<int>(::syscall(SYS_epoll_ctl, epfd, op, fd, event));
}

namespace frontdoor::core {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Accepts one loopback connection and closes the accepted socket: how many EPOLL_CTL_DEL it took.
int removals_when_closing(bool forget) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  tcp::socket accepted(io);
  acceptor.accept(accepted);
  accepted.non_blocking(true);  // registered with the reactor, as a session's socket is
  if (forget) forget_possible_dup(accepted);
  removals = 0;
  watched_fd = accepted.native_handle();
  accepted.close();
  watched_fd = -1;
  return removals;
}

TEST(AcceptedSocket, ClosesWithoutAnEpollRemovalOnceKnownNotDuplicated) {
  ASSERT_EQ(removals_when_closing(false), 1) << "Asio removes an assigned socket from epoll before closing it";
  if (FRONTDOOR_ASIO_INTERNALS) EXPECT_EQ(removals_when_closing(true), 0);
  else EXPECT_EQ(removals_when_closing(true), 1);
}

}  // namespace
}  // namespace frontdoor::core
