// Accepting through core::AcceptedSocket: non-blocking and close-on-exec from accept4, no
// ioctl(FIONBIO) and no EPOLL_CTL_DEL at close, over a real loopback connection.
//
// This binary defines epoll_ctl() and ioctl() (the calls Asio makes): they count the calls on one
// descriptor, then make the system call themselves.
#include "frontdoor/core/accepted_socket.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <cstdarg>
#include <optional>

namespace {
std::atomic<int> watched_fd{-1};
std::atomic<int> epoll_removals{0};
std::atomic<int> mode_changes{0};
}  // namespace

extern "C" int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  if (op == EPOLL_CTL_DEL && fd == watched_fd.load()) ++epoll_removals;
  return static_cast<int>(::syscall(SYS_epoll_ctl, epfd, op, fd, event));
}

extern "C" int ioctl(int fd, unsigned long request, ...) {
  va_list args;
  va_start(args, request);
  void* argument = va_arg(args, void*);
  va_end(args);
  if (request == FIONBIO && fd == watched_fd.load()) ++mode_changes;
  return static_cast<int>(::syscall(SYS_ioctl, fd, request, argument));
}

namespace frontdoor::core {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Counts {
  int mode_changes = 0;
  int epoll_removals = 0;
  bool non_blocking = false;
  bool close_on_exec = false;
  std::string echoed;
};

// Accepts one loopback connection (`through_accepted_socket`: the proxy's way; otherwise Asio's own,
// then non_blocking(true) as the proxy did before), then uses it as a session does: an asynchronous
// read, a synchronous non-blocking write, close. What it cost.
Counts accept_use_and_close(bool through_accepted_socket) {
  asio::io_context io;
  auto keep_running = asio::make_work_guard(io);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  acceptor.non_blocking(true);
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  std::optional<tcp::socket> server;
  AcceptedSocket accepted(io);
  tcp::socket plain(io);
  tcp::endpoint peer;
  if (through_accepted_socket) {
    acceptor.async_accept(accepted, peer, [&](const boost::system::error_code& ec) {
      EXPECT_FALSE(ec) << ec.message();
      watched_fd = accepted.native_handle();
      mode_changes = epoll_removals = 0;
      server.emplace(adopt_accepted(std::move(accepted)));
    });
  } else {
    acceptor.async_accept(plain, peer, [&](const boost::system::error_code& ec) {
      EXPECT_FALSE(ec) << ec.message();
      watched_fd = plain.native_handle();
      mode_changes = epoll_removals = 0;
      plain.non_blocking(true);
      server.emplace(std::move(plain));
    });
  }
  while (!server) io.run_one();
  EXPECT_EQ(peer, client.local_endpoint()) << "the peer's address comes with the connection";

  Counts counts;
  const int flags = ::fcntl(server->native_handle(), F_GETFL);
  counts.non_blocking = (flags & O_NONBLOCK) != 0;
  counts.close_on_exec = (::fcntl(server->native_handle(), F_GETFD) & FD_CLOEXEC) != 0;
  char buffer[16];
  bool read_done = false;
  server->async_read_some(asio::buffer(buffer), [&](const boost::system::error_code& ec, std::size_t n) {
    EXPECT_FALSE(ec);
    counts.echoed.assign(buffer, n);
    read_done = true;
  });
  asio::write(client, asio::buffer("ping", 4));
  while (!read_done) io.run_one();
  boost::system::error_code ec;
  server->write_some(asio::buffer("pong", 4), ec);
  EXPECT_FALSE(ec) << ec.message();
  server->close();
  counts.mode_changes = mode_changes;
  counts.epoll_removals = epoll_removals;
  watched_fd = -1;
  return counts;
}

TEST(AcceptedSocket, CostsNoSystemCallBeyondAcceptAndClose) {
  const Counts asio_way = accept_use_and_close(false);
  EXPECT_EQ(asio_way.mode_changes, 1) << "the counters see Asio's ioctl";
  EXPECT_EQ(asio_way.epoll_removals, 1) << "the counters see Asio's EPOLL_CTL_DEL";
  EXPECT_EQ(asio_way.echoed, "ping");

  const Counts ours = accept_use_and_close(true);
  EXPECT_TRUE(ours.non_blocking);
  EXPECT_EQ(ours.echoed, "ping");
  if (FRONTDOOR_ASIO_INTERNALS) {
    EXPECT_EQ(ours.mode_changes, 0);
    EXPECT_EQ(ours.epoll_removals, 0);
    EXPECT_TRUE(ours.close_on_exec);
  }
}

TEST(AcceptedSocket, AFullBacklogIsAcceptedOneByOne) {
  // Several connections waiting: each async_accept takes one, none is lost or doubled.
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  std::vector<tcp::socket> clients;
  for (int i = 0; i < 5; ++i) {
    clients.emplace_back(io);
    clients.back().connect(acceptor.local_endpoint());
  }
  std::vector<tcp::socket> accepted;
  AcceptedSocket next(io);
  std::function<void()> accept_one = [&] {
    acceptor.async_accept(next, [&](const boost::system::error_code& ec) {
      ASSERT_FALSE(ec) << ec.message();
      accepted.push_back(adopt_accepted(std::move(next)));
      next = AcceptedSocket(io);
      if (accepted.size() < clients.size()) accept_one();
    });
  };
  accept_one();
  io.run_for(std::chrono::seconds(5));
  ASSERT_EQ(accepted.size(), clients.size());
  for (std::size_t i = 0; i < clients.size(); ++i)
    EXPECT_EQ(accepted[i].remote_endpoint(), clients[i].local_endpoint());
}

}  // namespace
}  // namespace frontdoor::core
