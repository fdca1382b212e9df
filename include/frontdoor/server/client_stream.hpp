#pragma once
// ClientStream: the client side of a session, plain TCP or TLS (OpenSSL via asio::ssl), behind one
// small interface. The branch per operation is cheaper than a second Session type; plain TCP keeps
// its synchronous first write, TLS always takes the asynchronous path. Worker thread only.
#include <sys/socket.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <optional>
#include <string_view>

#include "frontdoor/core/drain_aware_reader.hpp"

namespace frontdoor::server {

class ClientStream {
 public:
  explicit ClientStream(boost::asio::io_context& io) : socket_(io) {}

  // Takes a freshly accepted socket (or a parked one with the reader it was read through); with a TLS
  // context the stream speaks TLS (handshake first).
  void reset(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context* tls,
             core::DrainAwareReader reader = {}) {
    tls_.reset();
    reader_ = reader;
    if (tls != nullptr) tls_.emplace(std::move(socket), *tls);
    else socket_ = std::move(socket);
  }

  bool is_tls() const noexcept { return tls_.has_value(); }
  // Plain TCP only: the socket, to park the connection without its session (no operation pending).
  boost::asio::ip::tcp::socket release_tcp() noexcept { return std::move(socket_); }
  core::DrainAwareReader reader() const noexcept { return reader_; }
  boost::asio::ip::tcp::socket& tcp() noexcept { return tls_ ? tls_->next_layer() : socket_; }

  template <class Handler>
  void async_handshake(Handler&& handler) {
    tls_->async_handshake(boost::asio::ssl::stream_base::server, std::forward<Handler>(handler));
  }

  // Plain TCP reads go through core::DrainAwareReader (`start` says whether the read waits for a new
  // request); TLS reads are Asio's own.
  template <class Handler>
  void async_read_some(boost::asio::mutable_buffer buffer, core::ReadStart start, Handler&& handler) {
    if (tls_) tls_->async_read_some(buffer, std::forward<Handler>(handler));
    else reader_.async_read_some(socket_, buffer, start, std::forward<Handler>(handler));
  }

  // What the kernel takes now without blocking (plain TCP); TLS reports would_block so the caller
  // goes asynchronous.
  std::size_t try_write(std::string_view head, std::string_view body, boost::system::error_code& ec) {
    if (tls_) {
      ec = boost::asio::error::would_block;
      return 0;
    }
    std::array<boost::asio::const_buffer, 2> buffers{boost::asio::buffer(head), boost::asio::buffer(body)};
    return socket_.write_some(buffers, ec);
  }

  template <class Handler>
  void async_write(std::string_view head, std::string_view body, Handler&& handler) {
    std::array<boost::asio::const_buffer, 2> buffers{boost::asio::buffer(head), boost::asio::buffer(body)};
    if (tls_) boost::asio::async_write(*tls_, buffers, std::forward<Handler>(handler));
    else boost::asio::async_write(socket_, buffers, std::forward<Handler>(handler));
  }

  // TLS: sends close_notify, then reads (OpenSSL drops any data) until the client's own
  // close_notify or end of stream. Not with another read or write outstanding.
  template <class Handler>
  void async_tls_shutdown(Handler&& handler) {
    tls_->async_shutdown(std::forward<Handler>(handler));
  }

  void shutdown_send() noexcept {
    boost::system::error_code ignored;
    tcp().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
  }

  // Whether the client sent bytes not read yet (a peek: nothing is taken). Closing over them makes the
  // kernel reset the connection, which drops what is still unsent to the client.
  bool has_unread_bytes() noexcept {
    char byte;
    return ::recv(tcp().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }

  void close() noexcept {
    boost::system::error_code ignored;
    tcp().close(ignored);
  }

  // Ends what is outstanding on the socket now (its handlers run with operation_aborted).
  void cancel() noexcept {
    boost::system::error_code ignored;
    tcp().cancel(ignored);
  }

  // The next close() resets the connection (RST) instead of ending it cleanly: what is still unsent
  // is dropped, and the client cannot take what it got for all of it.
  void abort() noexcept {
    boost::system::error_code ignored;
    tcp().set_option(boost::asio::socket_base::linger(true, 0), ignored);
  }

 private:
  boost::asio::ip::tcp::socket socket_;
  core::DrainAwareReader reader_;
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> tls_;
};

}  // namespace frontdoor::server
