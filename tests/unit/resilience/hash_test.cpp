// SipHash-2-4 against the reference vectors of its paper (key 00..0f, message 00..len-1), and the
// property the rate limiter needs: without the key, equal hashes cannot be predicted.
#include "frontdoor/resilience/hash.hpp"

#include <gtest/gtest.h>

#include <string>

namespace frontdoor::resilience {
namespace {

constexpr SipKey kReferenceKey{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

std::string message(std::size_t n) {
  std::string m;
  for (std::size_t i = 0; i < n; ++i) m.push_back(static_cast<char>(i));
  return m;
}

TEST(SipHash, ReferenceVectors) {
  EXPECT_EQ(siphash24(kReferenceKey, message(0)), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(siphash24(kReferenceKey, message(15)), 0xa129ca6149be45e5ULL);  // the paper's worked example
}

TEST(SipHash, EveryLengthAndKeyMatters) {
  // Lengths around the 8-byte block boundary all differ, and another key gives other values.
  const SipKey other{1, 2};
  for (std::size_t n = 0; n < 24; ++n) {
    EXPECT_NE(siphash24(kReferenceKey, message(n)), siphash24(kReferenceKey, message(n + 1))) << n;
    EXPECT_NE(siphash24(kReferenceKey, message(n)), siphash24(other, message(n))) << n;
  }
  // A trailing zero byte is not the same message (the length is part of the last block).
  EXPECT_NE(siphash24(kReferenceKey, std::string("a")), siphash24(kReferenceKey, std::string("a\0", 2)));
}

}  // namespace
}  // namespace frontdoor::resilience
