#pragma once
// Request ids: 32 hex digits (128 random bits) from a per-worker splitmix64 stream seeded from the OS.
// Unique in practice across workers and restarts, and free of locks and syscalls per request.
#include <array>
#include <cstdint>
#include <random>
#include <string_view>

namespace frontdoor::server {

class RequestIdGenerator {
 public:
  RequestIdGenerator() {
    std::random_device rd;
    state_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }

  // The view stays valid until the next call.
  std::string_view next() noexcept {
    static constexpr char kHex[] = "0123456789abcdef";
    for (int half = 0; half < 2; ++half) {
      std::uint64_t v = mix();
      for (int i = 0; i < 16; ++i, v >>= 4) id_[half * 16 + i] = kHex[v & 0xf];
    }
    return {id_.data(), id_.size()};
  }

 private:
  std::uint64_t mix() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::uint64_t state_;
  std::array<char, 32> id_{};
};

}  // namespace frontdoor::server
