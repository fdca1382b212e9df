// Drain-aware receives over a real loopback connection: which receives reach the kernel.
//
// This binary defines recv() (the call Asio's reactor and receive_now make): it counts the calls on
// one descriptor, then makes the system call itself, so the counts are the kernel's.
#include "frontdoor/core/drain_aware_reader.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <string>

namespace {
std::atomic<int> counted_fd{-1};
std::atomic<int> receives{0};
std::atomic<int> would_blocks{0};
}  // namespace

extern "C" ssize_t recv(int fd, void* data, size_t size, int flags) {
  const long n = ::syscall(SYS_recvfrom, fd, data, size, flags, nullptr, nullptr);
  const int error = errno;
  if (fd == counted_fd.load()) {
    ++receives;
    if (n < 0 && (error == EAGAIN || error == EWOULDBLOCK)) ++would_blocks;
  }
  errno = error;
  return static_cast<ssize_t>(n);
}

namespace frontdoor::core {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Completion {
  boost::system::error_code ec;
  std::size_t n = 0;
};

class DrainAwareReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    peer_.connect(acceptor.local_endpoint());
    acceptor.accept(socket_);
    counted_fd = socket_.native_handle();
    receives = would_blocks = 0;
  }
  void TearDown() override { counted_fd = -1; }

  void read(ReadStart start) {
    done_.reset();
    reader_.async_read_some(socket_, asio::buffer(buffer_), start,
                            [this](const boost::system::error_code& ec, std::size_t n) { done_ = Completion{ec, n}; });
  }
  // Runs the loop until the read completes, or for at most `limit`.
  bool completes_within(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done_ && std::chrono::steady_clock::now() < until) io_.run_one_for(std::chrono::milliseconds(10));
    return done_.has_value();
  }
  void peer_sends(const std::string& bytes) { asio::write(peer_, asio::buffer(bytes)); }
  // The peer's last bytes and its FIN in one segment (TCP_CORK), as a server that writes its answer
  // and closes can send them.
  void peer_sends_and_closes(const std::string& bytes) {
    const int on = 1;
    ASSERT_EQ(::setsockopt(peer_.native_handle(), IPPROTO_TCP, TCP_CORK, &on, sizeof on), 0);
    peer_sends(bytes);
    peer_.shutdown(tcp::socket::shutdown_send);
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> keep_running_{io_.get_executor()};
  tcp::socket socket_{io_};
  tcp::socket peer_{io_};
  DrainAwareReader reader_;
  std::array<char, 64> buffer_{};
  std::optional<Completion> done_;
};

TEST_F(DrainAwareReaderTest, TheReceiveAfterAShortOneWaitsForDataInsteadOfFindingNothing) {
  ASSERT_TRUE(kDrainAwareReceives) << "Boost " << BOOST_LIB_VERSION
                                   << ": check Asio's reactive_socket_recv_op against drain_aware_reader.hpp";
  peer_sends("GET / HTTP/1.1\r\n\r\n");
  read(ReadStart::on_readiness);
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  EXPECT_EQ(done_->n, 18u);

  // The next request is not there yet: a plain Asio read would try a receive now and get EAGAIN.
  receives = would_blocks = 0;
  read(ReadStart::on_readiness);
  EXPECT_FALSE(completes_within(std::chrono::milliseconds(50)));
  EXPECT_EQ(receives, 0) << "a receive was tried on a drained socket";

  peer_sends("next");
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  EXPECT_EQ(done_->n, 4u);
  EXPECT_EQ(receives, 1);
  EXPECT_EQ(would_blocks, 0);
}

TEST_F(DrainAwareReaderTest, AFullReceiveKeepsReadingAtOnce) {
  peer_sends(std::string(100, 'x'));
  read(ReadStart::on_readiness);
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  EXPECT_EQ(done_->n, 64u) << "the buffer was filled: more may be waiting";
  read(ReadStart::on_readiness);
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  EXPECT_EQ(done_->n, 36u);
  EXPECT_EQ(would_blocks, 0);
}

TEST_F(DrainAwareReaderTest, AnEndOfStreamThatCameWithTheDataIsSeenByTheNextReadAtOnce) {
  read(ReadStart::on_readiness);  // waiting (the response not sent yet), as an upstream's standing read
  EXPECT_FALSE(completes_within(std::chrono::milliseconds(20)));
  peer_sends_and_closes("HTTP/1.0 200 OK\r\n\r\nbody");
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  EXPECT_EQ(done_->n, 23u);  // the FIN was consumed with these bytes: no readiness edge will follow

  read(ReadStart::at_once);
  ASSERT_TRUE(completes_within(std::chrono::milliseconds(500))) << "the end of the stream went unnoticed";
  EXPECT_EQ(done_->ec, asio::error::eof);
}

TEST_F(DrainAwareReaderTest, AnEndOfStreamAloneIsSeenByAWaitingRead) {
  peer_sends("last");
  read(ReadStart::on_readiness);
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  read(ReadStart::on_readiness);  // waits for the edge
  EXPECT_FALSE(completes_within(std::chrono::milliseconds(20)));
  peer_.shutdown(tcp::socket::shutdown_send);
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  EXPECT_EQ(done_->ec, asio::error::eof);
}

TEST_F(DrainAwareReaderTest, AReaderHandedOverWithItsSocketKeepsWhatTheLastReceiveSaid) {
  read(ReadStart::on_readiness);
  EXPECT_FALSE(completes_within(std::chrono::milliseconds(20)));
  peer_sends_and_closes("GET / HTTP/1.1\r\nHost: a");
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  DrainAwareReader handed_over = reader_;  // a parked connection hands its reader to the next session
  reader_ = DrainAwareReader();
  reader_ = handed_over;
  read(ReadStart::at_once);
  ASSERT_TRUE(completes_within(std::chrono::milliseconds(500)));
  EXPECT_EQ(done_->ec, asio::error::eof);
}

TEST_F(DrainAwareReaderTest, TheFirstReadOfAnAcceptedSocketWaitsForDataWithoutTrying) {
  read(ReadStart::first);
  EXPECT_FALSE(completes_within(std::chrono::milliseconds(20)));
  if (kDrainAwareReceives) {
    EXPECT_EQ(receives, 0) << "a receive was tried before any data came";
  }
  peer_sends("GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(completes_within(std::chrono::seconds(5)));
  EXPECT_EQ(done_->n, 18u);
  EXPECT_EQ(would_blocks, 0);
}

TEST_F(DrainAwareReaderTest, TheFirstReadFindsWhatCameBeforeIt) {
  // Sent after the accept but before the read began: the edge came while nothing was queued.
  peer_sends("early");
  read(ReadStart::first);
  ASSERT_TRUE(completes_within(std::chrono::seconds(5))) << "data that came before the first read was lost";
  EXPECT_EQ(done_->n, 5u);
}

TEST(DrainAwareFirstRead, FindsWhatCameBeforeTheAccept) {
  // Sent before the socket was even accepted: epoll reports it when the socket is registered.
  asio::io_context io;
  auto keep_running = asio::make_work_guard(io);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  asio::write(client, asio::buffer("before accept", 13));
  tcp::socket accepted(io);
  acceptor.accept(accepted);
  DrainAwareReader reader;
  std::array<char, 64> buffer{};
  std::size_t got = 0;
  reader.async_read_some(accepted, asio::buffer(buffer), ReadStart::first,
                         [&](const boost::system::error_code& ec, std::size_t n) {
                           EXPECT_FALSE(ec);
                           got = n;
                         });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (got == 0 && std::chrono::steady_clock::now() < until) io.run_one_for(std::chrono::milliseconds(10));
  EXPECT_EQ(got, 13u) << "data that came before the accept was lost";
}

TEST(ReceiveNow, ReportsDataEndAndNothing) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  char buffer[8];
  boost::system::error_code ec;
  EXPECT_EQ(receive_now(fds[0], boost::asio::buffer(buffer), ec), 0u);
  EXPECT_EQ(ec, boost::asio::error::would_block);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  EXPECT_EQ(receive_now(fds[0], boost::asio::buffer(buffer), ec), 3u);
  EXPECT_FALSE(ec);
  ::close(fds[1]);
  EXPECT_EQ(receive_now(fds[0], boost::asio::buffer(buffer), ec), 0u);
  EXPECT_EQ(ec, boost::asio::error::eof);
  ::close(fds[0]);
}

}  // namespace
}  // namespace frontdoor::core
