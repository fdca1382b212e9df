#include "frontdoor/server/cpu_quota.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

namespace frontdoor::server {

namespace {

std::optional<long long> number(std::string_view text) noexcept {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return in ? out.str() : std::string();
}

// The process's own cgroup path for `controller` ("" for v2's unified line), from /proc/self/cgroup.
std::string own_cgroup(std::string_view controller) {
  std::istringstream lines(read_file("/proc/self/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string_view controllers = std::string_view(line).substr(first + 1, second - first - 1);
    const bool match = controller.empty() ? controllers.empty()
                                          : ("," + std::string(controllers) + ",").find("," + std::string(controller) + ",") !=
                                                std::string::npos;
    if (match) return line.substr(second + 1);
  }
  return {};
}

}  // namespace

std::optional<double> parse_cpu_max(std::string_view text) noexcept {
  const auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto quota = number(text.substr(0, space));
  const auto period = number(text.substr(space + 1));
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;  // "max": no quota
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::optional<double> parse_cfs_quota(std::string_view quota_us, std::string_view period_us) noexcept {
  const auto quota = number(quota_us);
  const auto period = number(period_us);
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;  // -1: no quota
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::optional<double> cgroup_cpu_quota() {
  // cgroup v2: the unified hierarchy, at the process's own path, else at the mount's root (a
  // container usually sees its own cgroup there).
  for (const std::string& dir : {"/sys/fs/cgroup" + own_cgroup(""), std::string("/sys/fs/cgroup")}) {
    if (auto q = parse_cpu_max(read_file(dir + "/cpu.max"))) return q;
  }
  // cgroup v1: the cpu controller.
  for (const std::string& root : {std::string("/sys/fs/cgroup/cpu"), std::string("/sys/fs/cgroup/cpu,cpuacct")}) {
    for (const std::string& dir : {root + own_cgroup("cpu"), root}) {
      if (auto q = parse_cfs_quota(read_file(dir + "/cpu.cfs_quota_us"), read_file(dir + "/cpu.cfs_period_us")))
        return q;
    }
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_memory_max(std::string_view text) noexcept {
  const auto value = number(text);
  // v1 reports "no limit" as the largest page-aligned 64-bit value: anything above 2^60 is none.
  if (!value || *value <= 0 || static_cast<std::uint64_t>(*value) >= (std::uint64_t{1} << 60)) return std::nullopt;
  return static_cast<std::uint64_t>(*value);
}

std::optional<std::uint64_t> cgroup_memory_limit() {
  for (const std::string& dir : {"/sys/fs/cgroup" + own_cgroup(""), std::string("/sys/fs/cgroup")}) {
    if (auto limit = parse_memory_max(read_file(dir + "/memory.max"))) return limit;
  }
  for (const std::string& dir : {"/sys/fs/cgroup/memory" + own_cgroup("memory"), std::string("/sys/fs/cgroup/memory")}) {
    if (auto limit = parse_memory_max(read_file(dir + "/memory.limit_in_bytes"))) return limit;
  }
  return std::nullopt;
}

std::uint64_t connections_for_memory(std::uint64_t limit, std::uint64_t per_connection) noexcept {
  return std::max<std::uint64_t>(64, limit / 4 * 3 / std::max<std::uint64_t>(per_connection, 1));
}

unsigned default_workers(std::optional<double> quota, unsigned cores) noexcept {
  cores = std::max(1u, cores);
  if (!quota) return cores;
  return std::clamp(static_cast<unsigned>(std::ceil(*quota - 1e-9)), 1u, cores);
}

}  // namespace frontdoor::server
