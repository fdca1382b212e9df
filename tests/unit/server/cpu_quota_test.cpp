// server.workers: 0 follows the cgroup's CPU quota, not the host's cores; server.max_connections: 0
// its memory limit.
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

TEST(MemoryLimit, CgroupMemoryMax) {
  EXPECT_EQ(parse_memory_max("536870912\n"), 536870912u);
  EXPECT_EQ(parse_memory_max("max\n"), std::nullopt);                // v2: none
  EXPECT_EQ(parse_memory_max("9223372036854771712\n"), std::nullopt);  // v1: none
  EXPECT_EQ(parse_memory_max(""), std::nullopt);
}

TEST(MemoryLimit, ConnectionsThatFitInThreeQuartersOfIt) {
  // A 512 MiB pod at 48 KiB per connection holding a head (a 32 KiB buffer + 16 KiB): 8192, not the
  // half a million its file descriptors would allow.
  EXPECT_EQ(connections_for_memory(512u << 20, 48u << 10), 8192u);
  EXPECT_EQ(connections_for_memory(256u << 20, 48u << 10), 4096u);
  EXPECT_EQ(connections_for_memory(1u << 20, 48u << 10), 64u);  // at least 64
}

}  // namespace
}  // namespace frontdoor::server
