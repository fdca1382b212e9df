#pragma once
// How many workers `server.workers: 0` means: one per CPU the process may use — its cgroup's CPU
// quota when one is set (a pod with a 2-CPU limit on a 64-core node gets 2 workers, not 64), else
// the cores it sees. Read once at start.
#include <optional>
#include <string_view>

namespace frontdoor::server {

// cgroup v2 `cpu.max` ("200000 100000", or "max 100000" for none): CPUs, or nullopt.
std::optional<double> parse_cpu_max(std::string_view text) noexcept;
// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` ("-1" for none).
std::optional<double> parse_cfs_quota(std::string_view quota_us, std::string_view period_us) noexcept;
// The process's CPU quota from /sys/fs/cgroup (v2, then v1), or nullopt when none is set.
std::optional<double> cgroup_cpu_quota();
// Workers for `cores` visible cores under `quota` CPUs: the quota rounded up, never more than the
// cores, at least 1.
unsigned default_workers(std::optional<double> quota, unsigned cores) noexcept;

}  // namespace frontdoor::server
