#pragma once
// IdleConnection: a plain-TCP keep-alive client between two requests, parked without a session — its
// socket, its peer, and room for the first bytes of its next request. Ten thousand idle clients then
// cost a few hundred bytes each instead of a session with its buffers (the session goes back to the
// worker's pool, and another one takes the connection when its next request arrives).
// Owned by its worker (the parked list, oldest first); worker thread only.
#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "frontdoor/core/drain_aware_reader.hpp"
#include "frontdoor/server/client_connection_counts.hpp"

namespace frontdoor::server {

struct ListenerInfo;

struct IdleConnection {
  // A typical request head arrives whole in this; a longer one is read on by the session.
  static constexpr std::size_t kFirstBytes = 512;

  explicit IdleConnection(boost::asio::io_context& io) : socket(io) {}
  std::string_view peer_text() const noexcept { return {peer_text_bytes.data(), peer_text_size}; }

  boost::asio::ip::tcp::socket socket;
  core::DrainAwareReader reader;  // handed to the session with the socket
  const ListenerInfo* listener = nullptr;
  boost::asio::ip::address peer;
  ClientConnectionCounts::Slot client_slot;  // handed to the session too; given back when closed
  std::array<char, 46> peer_text_bytes{};
  std::uint8_t peer_text_size = 0;
  bool read_pending = false;
  bool closed = false;  // closed while its read was pending: recycled when that read completes
  std::chrono::steady_clock::time_point idle_since{};
  std::uint64_t idle_order = 0;  // Worker::next_idle_order() when parked: which idle connection is oldest
  IdleConnection* older = nullptr;
  IdleConnection* newer = nullptr;
  std::array<char, kFirstBytes> first_bytes{};
};

}  // namespace frontdoor::server
