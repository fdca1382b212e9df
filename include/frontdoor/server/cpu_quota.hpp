#pragma once
// What the process's cgroup allows it, read once at start. How many workers `server.workers: 0`
// means: one per CPU the process may use — its cgroup's CPU quota when one is set (a pod with a
// 2-CPU limit on a 64-core node gets 2 workers, not 64), else the cores it sees.
#include <cstdint>
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

// The memory limit, the same way: `server.max_connections: 0` must not let clients holding
// half-sent heads take the pod past its limit (the OOM killer) before the limit refuses anyone.
// cgroup v2 `memory.max` ("max" for none), v1 `memory.limit_in_bytes` (a huge number for none).
std::optional<std::uint64_t> parse_memory_max(std::string_view text) noexcept;
std::optional<std::uint64_t> cgroup_memory_limit();
// Client connections that fit in three quarters of `limit` bytes at `per_connection` each (the
// rest is for the process itself), at least 64.
std::uint64_t connections_for_memory(std::uint64_t limit, std::uint64_t per_connection) noexcept;

}  // namespace frontdoor::server
