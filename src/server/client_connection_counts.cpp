#include "frontdoor/server/client_connection_counts.hpp"

#include "frontdoor/core/network.hpp"

namespace frontdoor::server {

ClientConnectionCounts::Key ClientConnectionCounts::key_of(const boost::asio::ip::address& address) noexcept {
  const auto bytes = mapped_bytes(address);  // IPv4 as ::ffff:a.b.c.d
  const bool v4 = address.is_v4() || address.to_v6().is_v4_mapped();
  std::uint64_t bits = 0;
  // IPv4: its 4 bytes; IPv6: its first 8 (the /64).
  const std::size_t from = v4 ? 12 : 0;
  const std::size_t to = v4 ? 16 : 8;
  for (std::size_t i = from; i < to; ++i) bits = bits << 8 | bytes[i];
  return Key{bits, !v4};
}

std::string ClientConnectionCounts::describe(const boost::asio::ip::address& address) {
  const Key key = key_of(address);
  if (!key.v6) {
    char text[46];
    return std::string(text, format_address(address, text, sizeof text));
  }
  boost::asio::ip::address_v6::bytes_type prefix{};
  for (std::size_t i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(key.bits >> (56 - 8 * i));
  return boost::asio::ip::address_v6(prefix).to_string() + "/64";
}

void ClientConnectionCounts::Slot::reset() noexcept {
  if (table_ == nullptr) return;
  table_->release(key_);
  table_ = nullptr;
}

ClientConnectionCounts::Slot ClientConnectionCounts::try_take(const boost::asio::ip::address& address,
                                                              std::uint32_t limit) {
  const Key key = key_of(address);
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  auto [it, inserted] = shard.counts.try_emplace(key, 0);
  if (it->second >= limit) {
    if (inserted) shard.counts.erase(it);  // limit 0: nothing held, nothing kept
    return Slot{};
  }
  ++it->second;
  return Slot{this, key};
}

void ClientConnectionCounts::release(const Key& key) noexcept {
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.counts.find(key);
  if (it == shard.counts.end()) return;
  if (--it->second == 0) shard.counts.erase(it);
}

std::uint32_t ClientConnectionCounts::open(const boost::asio::ip::address& address) const {
  const Key key = key_of(address);
  const Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.counts.find(key);
  return it == shard.counts.end() ? 0 : it->second;
}

std::size_t ClientConnectionCounts::clients() const {
  std::size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.counts.size();
  }
  return n;
}

}  // namespace frontdoor::server
