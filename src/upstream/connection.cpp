#include "frontdoor/upstream/connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/write.hpp>
#include <cerrno>

#include "frontdoor/upstream/cluster_load.hpp"

namespace frontdoor::upstream {

namespace asio = boost::asio;

UpstreamConnection::UpstreamConnection(asio::io_context& io, UpstreamPool& pool, std::uint32_t buffer_bytes)
    : socket_(io), pool_(pool), buffer_(new char[buffer_bytes]), capacity_(buffer_bytes) {}

void UpstreamConnection::connect(const asio::ip::tcp::endpoint& address, ConnectionOwner* owner) {
  owner_ = owner;
  connect_pending_ = true;
  socket_.async_connect(address, [this](const boost::system::error_code& ec) {
    connect_pending_ = false;
    if (closed_) return maybe_destroy();
    boost::system::error_code ignored;
    if (!ec) {
      socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
      socket_.non_blocking(true, ignored);
      read(core::ReadStart::on_readiness);  // nothing can be there before the request is sent
    }
    if (owner_ != nullptr) owner_->on_upstream_connected(ec);
    else close();
  });
}

void UpstreamConnection::read(core::ReadStart start) {
  if (read_pending_ || closed_ || eof_) return;
  if (begin_ == end_) begin_ = end_ = 0;
  if (end_ == capacity_) {
    if (begin_ == 0) return;  // full: the owner must consume first
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  read_pending_ = true;
  reader_.async_read_some(socket_, asio::buffer(buffer_.get() + end_, capacity_ - end_), start,
                          [this](const boost::system::error_code& ec, std::size_t n) { on_read(ec, n); });
}

void UpstreamConnection::on_read(const boost::system::error_code& ec, std::size_t n) {
  read_pending_ = false;
  if (closed_) return maybe_destroy();
  end_ += static_cast<std::uint32_t>(n);
  if (ec) {
    eof_ = true;
    broken_ = ec != asio::error::eof;
  }
  if (owner_ == nullptr) {
    // Idle: the upstream closed it, or sent bytes nobody asked for. Either way it cannot be reused.
    close();
    return;
  }
  owner_->on_upstream_read(ec);
}

// The idle read waits for the socket's next edge, and a FIN that came with the response's last
// bytes raises none: the upstream may have closed (or half-closed) without it being seen. A peek
// tells: nothing there (EAGAIN) is the one answer that leaves it usable.
bool UpstreamConnection::still_open() noexcept {
  char byte;
  const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void UpstreamConnection::async_write(std::string_view head, std::string_view body) {
  write_pending_ = true;
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  asio::async_write(socket_, buffers, [this](const boost::system::error_code& ec, std::size_t) {
    write_pending_ = false;
    if (closed_) return maybe_destroy();
    if (owner_ != nullptr) owner_->on_upstream_write(ec);
    else close();
  });
}

void UpstreamConnection::consume(std::size_t n) noexcept {
  begin_ += static_cast<std::uint32_t>(n);
  if (begin_ == end_) begin_ = end_ = 0;
}

void UpstreamConnection::close() noexcept {
  if (closed_) return;
  closed_ = true;
  owner_ = nullptr;
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (clusters_ != nullptr) clusters_->remove_connection(cluster_);
  clusters_ = nullptr;
  pool_.forget(this);
  maybe_destroy();
}

void UpstreamConnection::maybe_destroy() noexcept {
  if (closed_ && !read_pending_ && !write_pending_ && !connect_pending_) delete this;
}

UpstreamPool::~UpstreamPool() { close_all(); }

UpstreamConnection* UpstreamPool::acquire(ConnectionOwner* owner, bool confirm_open) noexcept {
  while (!idle_.empty()) {
    UpstreamConnection* conn = idle_.back();
    idle_.pop_back();
    if (conn->closed() || conn->eof() || (confirm_open && !conn->still_open())) {
      conn->close();
      continue;
    }
    conn->set_owner(owner);
    return conn;
  }
  return nullptr;
}

UpstreamConnection* UpstreamPool::create(std::uint32_t buffer_bytes) {
  ++open_;
  return new UpstreamConnection(io_, *this, buffer_bytes);
}

void UpstreamPool::release(UpstreamConnection* conn, std::uint32_t max_idle,
                           std::chrono::steady_clock::time_point now) noexcept {
  conn->set_owner(nullptr);
  if (retired_ || idle_.size() >= max_idle || !conn->data().empty() || conn->eof()) {
    conn->close();
    return;
  }
  conn->idle_since = now;
  idle_.push_back(conn);
  conn->read(core::ReadStart::on_readiness);
}

void UpstreamPool::forget(UpstreamConnection* conn) noexcept {
  --open_;
  auto it = std::find(idle_.begin(), idle_.end(), conn);
  if (it != idle_.end()) idle_.erase(it);
}

void UpstreamPool::close_idle_before(std::chrono::steady_clock::time_point cutoff) noexcept {
  // Oldest first (bottom of the stack); stop at the first one still fresh.
  while (!idle_.empty() && idle_.front()->idle_since < cutoff) idle_.front()->close();
}

bool UpstreamPool::close_idle_counted_for(std::uint32_t manifest) noexcept {
  for (UpstreamConnection* conn : idle_)
    if (conn->counted_for(manifest)) {
      conn->close();  // gives the slot back (and leaves idle_)
      return true;
    }
  return false;
}

void UpstreamPool::close_all() noexcept {
  while (!idle_.empty()) idle_.back()->close();
}

}  // namespace frontdoor::upstream
