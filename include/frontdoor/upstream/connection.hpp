#pragma once
// UpstreamConnection: one keep-alive connection to an upstream endpoint, owned by one worker.
//
// While alive it always has a read outstanding once connected ("standing read"): when idle in the
// pool that read notices the upstream closing the connection; when an exchange owns it, the same read
// delivers the response — so taking a connection from the pool costs no cancel and no extra syscall.
// Events go to its owner (ConnectionOwner); with no owner, any event closes the connection.
// Lifetime: heap object that deletes itself once closed and no operation is outstanding.
// Worker thread only.
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "frontdoor/core/drain_aware_reader.hpp"
#include "frontdoor/manifest/manifest.hpp"

namespace frontdoor::upstream {

class ClusterLoad;
class UpstreamPool;

// What an owned connection reports to: the exchange using it (proxy/). Worker thread only.
class ConnectionOwner {
 public:
  virtual void on_upstream_connected(const boost::system::error_code& ec) = 0;
  // Bytes arrived (data()), or the stream ended (eof()).
  virtual void on_upstream_read(const boost::system::error_code& ec) = 0;
  // An async_write finished.
  virtual void on_upstream_write(const boost::system::error_code& ec) = 0;

 protected:
  ~ConnectionOwner() = default;
};

class UpstreamConnection {
 public:
  UpstreamConnection(boost::asio::io_context& io, UpstreamPool& pool, std::uint32_t buffer_bytes);
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }
  UpstreamPool& pool() noexcept { return pool_; }

  void connect(const boost::asio::ip::tcp::endpoint& address, ConnectionOwner* owner);
  // Issues the standing read unless one is outstanding: `at_once` for more of a response (the end of
  // the stream is seen without delay), `on_readiness` while idle (see core/drain_aware_reader.hpp).
  void read(core::ReadStart start = core::ReadStart::at_once);
  bool read_outstanding() const noexcept { return read_pending_; }
  // Asynchronous write of what a non-blocking write could not send; completion goes to the owner.
  void async_write(std::string_view head, std::string_view body);

  // Received bytes not yet consumed by the owner.
  std::string_view data() const noexcept { return {buffer_.get() + begin_, end_ - begin_}; }
  char* mutable_data() noexcept { return buffer_.get() + begin_; }
  void consume(std::size_t n) noexcept;
  void shrink_data(std::size_t n) noexcept { end_ = begin_ + static_cast<std::uint32_t>(n); }
  bool buffer_full() const noexcept { return begin_ == 0 && end_ == capacity_; }
  bool eof() const noexcept { return eof_; }
  // Idle only: whether the upstream has neither closed it nor sent anything since (one receive).
  bool still_open() noexcept;
  // The stream ended with an error (a reset) rather than the peer's FIN: no end of a body.
  bool broken() const noexcept { return broken_; }

  void set_owner(ConnectionOwner* owner) noexcept { owner_ = owner; }
  // Counted in a cluster's max_connections: given back when the connection closes.
  void count_in(upstream::ClusterLoad* clusters, std::uint32_t manifest) noexcept {
    clusters_ = clusters;
    cluster_ = manifest;
  }
  bool counted_for(std::uint32_t manifest) const noexcept { return clusters_ != nullptr && cluster_ == manifest; }
  ConnectionOwner* owner() const noexcept { return owner_; }
  std::uint64_t requests_served() const noexcept { return requests_; }
  void count_request() noexcept { ++requests_; }

  std::chrono::steady_clock::time_point idle_since{};

  // Closes the socket; outstanding operations complete with operation_aborted and the object is freed.
  void close() noexcept;
  bool closed() const noexcept { return closed_; }

 private:
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void maybe_destroy() noexcept;

  boost::asio::ip::tcp::socket socket_;
  core::DrainAwareReader reader_;
  UpstreamPool& pool_;
  std::unique_ptr<char[]> buffer_;
  std::uint32_t capacity_;
  std::uint32_t begin_ = 0;
  std::uint32_t end_ = 0;
  ConnectionOwner* owner_ = nullptr;
  upstream::ClusterLoad* clusters_ = nullptr;
  std::uint32_t cluster_ = 0;
  std::uint64_t requests_ = 0;
  bool read_pending_ = false;
  bool write_pending_ = false;
  bool connect_pending_ = false;
  bool closed_ = false;
  bool eof_ = false;
  bool broken_ = false;
};

// The idle connections of one endpoint on one worker, most recently used on top (it is the warmest
// and least likely to have been closed by the upstream).
class UpstreamPool {
 public:
  UpstreamPool(boost::asio::io_context& io, manifest::EndpointId id) : io_(io), id_(id) {}
  ~UpstreamPool();

  manifest::EndpointId endpoint_id() const noexcept { return id_; }

  // An idle connection for `owner`, newest first; null when none. `confirm_open`: each is checked
  // with a receive first (UpstreamConnection::still_open), for a request that could not be sent
  // again if the connection turned out closed.
  UpstreamConnection* acquire(ConnectionOwner* owner, bool confirm_open = false) noexcept;
  // A new, unconnected connection (not counted as idle).
  UpstreamConnection* create(std::uint32_t buffer_bytes);
  // Back to the pool after a complete exchange; closed instead when the pool is full.
  void release(UpstreamConnection* conn, std::uint32_t max_idle, std::chrono::steady_clock::time_point now) noexcept;
  // Called by a connection when it closes (idle or not).
  void forget(UpstreamConnection* conn) noexcept;
  // Closes connections idle since before `cutoff`.
  void close_idle_before(std::chrono::steady_clock::time_point cutoff) noexcept;
  // Closes the oldest idle connection that holds a slot of `manifest`'s max_connections; false if none.
  bool close_idle_counted_for(std::uint32_t manifest) noexcept;
  void close_all() noexcept;
  // Its endpoint id now names another address: connections coming back are closed, not kept.
  void retire() noexcept { retired_ = true; }

  std::size_t idle_count() const noexcept { return idle_.size(); }
  std::size_t open_count() const noexcept { return open_; }

 private:
  boost::asio::io_context& io_;
  manifest::EndpointId id_;
  std::vector<UpstreamConnection*> idle_;
  std::size_t open_ = 0;
  bool retired_ = false;
};

}  // namespace frontdoor::upstream
