#pragma once
// SplitMix64: a tiny, fast, statistically decent PRNG (Steele, Lea, Flood 2014) for jitter and
// power-of-two choices. Not cryptographic. One per worker: no lock, no syscall, no allocation.
#include <cstdint>

namespace frontdoor::resilience {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t operator()() noexcept { return next(); }

  // Uniform in [0, bound) (bound > 0) by Lemire's multiply-shift; the bias is below bound / 2^64.
  std::uint64_t below(std::uint64_t bound) noexcept { return scale(next(), bound); }

  // Maps a uniform 64-bit value onto [0, bound): the high half of random x bound.
  static std::uint64_t scale(std::uint64_t random, std::uint64_t bound) noexcept {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(random) * bound) >> 64);
  }

 private:
  std::uint64_t state_;
};

}  // namespace frontdoor::resilience
