#pragma once
// Open client connections per client, whole process (server.max_connections_per_client), so that one
// client cannot hold every connection slot: a slowloris swarm or a client that never reads from one
// address would otherwise lock everyone else out at server.max_connections. Touched when a
// connection opens and when it closes, never per request; connections of one client land on every
// worker (SO_REUSEPORT hashes the port too), hence one table behind sharded locks.
#include <array>
#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace frontdoor::server {

class ClientConnectionCounts {
 public:
  // Who counts as one client: an IPv4 address (IPv4-mapped IPv6 too), or an IPv6 address's /64 (a
  // site gets a /64 and may use every address in it, so per address would cap nothing).
  struct Key {
    std::uint64_t bits = 0;
    bool v6 = false;
    friend bool operator==(const Key&, const Key&) = default;
  };
  static Key key_of(const boost::asio::ip::address& address) noexcept;
  // The client of `address` as text, for the log: "192.0.2.7", "2001:db8:1:2::/64".
  static std::string describe(const boost::asio::ip::address& address);

  // One open connection's place in the count: given back when destroyed or reset (move-only).
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : table_(other.table_), key_(other.key_) { other.table_ = nullptr; }
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        reset();
        table_ = other.table_;
        key_ = other.key_;
        other.table_ = nullptr;
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { reset(); }
    explicit operator bool() const noexcept { return table_ != nullptr; }
    void reset() noexcept;

   private:
    friend class ClientConnectionCounts;
    Slot(ClientConnectionCounts* table, Key key) noexcept : table_(table), key_(key) {}
    ClientConnectionCounts* table_ = nullptr;
    Key key_{};
  };

  // A slot for one more connection of `address`'s client, or an empty one when that client has
  // `limit` open already.
  Slot try_take(const boost::asio::ip::address& address, std::uint32_t limit);
  // Connections the client of `address` has open (tests, diagnostics).
  std::uint32_t open(const boost::asio::ip::address& address) const;
  // Clients with at least one connection counted.
  std::size_t clients() const;

 private:
  // splitmix64's finaliser: every bit of the key moves every bit of the hash (a plain multiply
  // leaves the low bits to the key's low bits: the /64s of one /48 would share a shard).
  static std::uint64_t mix(const Key& key) noexcept {
    std::uint64_t x = key.bits ^ (key.v6 ? 0x9e3779b97f4a7c15ULL : 0);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  struct KeyHash {
    std::size_t operator()(const Key& key) const noexcept { return static_cast<std::size_t>(mix(key)); }
  };
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    std::unordered_map<Key, std::uint32_t, KeyHash> counts;  // no zero entries: size = open clients
  };
  // The top bits pick the shard, the map's prime modulus uses them all.
  Shard& shard_of(const Key& key) noexcept { return shards_[mix(key) >> 60]; }
  const Shard& shard_of(const Key& key) const noexcept { return shards_[mix(key) >> 60]; }
  void release(const Key& key) noexcept;

  std::array<Shard, 16> shards_;  // 16 = 2^(64-60)
};

}  // namespace frontdoor::server
