// What a global limit hands Redis: the interval between two requests in whole microseconds,
// rounded so that the limit is never looser than configured (configuration.md).
#include "frontdoor/ratelimit/compiled_limit.hpp"

#include <gtest/gtest.h>

namespace frontdoor::ratelimit {
namespace {

std::int64_t interval_for(std::uint32_t requests_per_second) {
  config::RateLimitConfig rc;
  rc.name = "r";
  rc.scope = "global";
  rc.requests_per_second = requests_per_second;
  return compile_rate_limit(rc, "").interval_us;
}

TEST(CompiledRateLimit, TheGlobalIntervalIsRoundedUpNeverLooser) {
  EXPECT_EQ(interval_for(200), 5000);    // exact
  EXPECT_EQ(interval_for(3), 333334);    // 2.999997/s, not 3.000003/s
  EXPECT_EQ(interval_for(600000), 2);    // 500 000/s granted: it was 1 µs, 1 000 000/s
  EXPECT_EQ(interval_for(300000), 4);    // 250 000/s: it was 3 µs, 333 333/s
  EXPECT_EQ(interval_for(1000000), 1);
  for (std::uint32_t rate : {7u, 999u, 30000u, 90000u, 400000u})
    EXPECT_LE(1e6 / static_cast<double>(interval_for(rate)), rate) << rate;
}

}  // namespace
}  // namespace frontdoor::ratelimit
