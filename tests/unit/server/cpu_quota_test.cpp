// server.workers: 0 follows the cgroup's CPU quota, not the host's cores.
#include "frontdoor/server/cpu_quota.hpp"

#include <gtest/gtest.h>

namespace frontdoor::server {
namespace {

TEST(CpuQuota, CgroupV2CpuMax) {
  EXPECT_EQ(parse_cpu_max("200000 100000\n"), 2.0);
  EXPECT_EQ(parse_cpu_max("150000 100000"), 1.5);
  EXPECT_EQ(parse_cpu_max("max 100000\n"), std::nullopt);
  EXPECT_EQ(parse_cpu_max(""), std::nullopt);
  EXPECT_EQ(parse_cpu_max("x y"), std::nullopt);
}

TEST(CpuQuota, CgroupV1CfsQuota) {
  EXPECT_EQ(parse_cfs_quota("400000\n", "100000\n"), 4.0);
  EXPECT_EQ(parse_cfs_quota("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(parse_cfs_quota("", ""), std::nullopt);
}

TEST(CpuQuota, WorkersFollowTheQuota) {
  EXPECT_EQ(default_workers(2.0, 64), 2u);    // a pod with a 2-CPU limit on a 64-core node
  EXPECT_EQ(default_workers(1.5, 64), 2u);    // rounded up: the quota allows part of a second core
  EXPECT_EQ(default_workers(0.25, 64), 1u);   // at least one
  EXPECT_EQ(default_workers(16.0, 4), 4u);    // never more than the cores seen
  EXPECT_EQ(default_workers(std::nullopt, 8), 8u);
  EXPECT_EQ(default_workers(std::nullopt, 0), 1u);
}

}  // namespace
}  // namespace frontdoor::server
