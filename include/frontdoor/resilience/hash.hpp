#pragma once
// Stable 64-bit hashing for consistent-hash keys, sticky cookies and rate-limit keys. The algorithm is
// fixed (FNV-1a 64 over the bytes, then the MurmurHash3 fmix64 finaliser for avalanche) and must
// never change: values may be stored in cookies and must agree across processes, builds and replicas.
// (std::hash gives no such promise.) Not resistant to deliberate collisions: do not use it where an
// attacker choosing keys could hurt more than an uneven spread.
#include <cstdint>
#include <string_view>

namespace frontdoor::resilience {

// MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the output.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

constexpr std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t seed = 0xcbf29ce484222325ULL) noexcept {
  std::uint64_t h = seed;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

constexpr std::uint64_t hash64(std::string_view bytes) noexcept { return mix64(fnv1a64(bytes)); }

// SipHash-2-4 (Aumasson and Bernstein): a keyed hash. Where a client chooses the bytes (a rate
// limit's key: its address, a header, a path), an unkeyed hash lets it compute values that collide
// with another client's and spend their quota; with a key it does not know, it cannot.
struct SipKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
  friend bool operator==(const SipKey&, const SipKey&) = default;
};
std::uint64_t siphash24(const SipKey& key, std::string_view bytes) noexcept;

// Order-sensitive combination, e.g. hash_combine(policy_id, hash64(client_ip)).
constexpr std::uint64_t hash_combine(std::uint64_t a, std::uint64_t b) noexcept {
  return mix64(a ^ (mix64(b) + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2)));
}

}  // namespace frontdoor::resilience
