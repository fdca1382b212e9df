#pragma once
// Per-worker counters: plain integers written by the worker thread only. The admin side (another
// issue) sums them across workers; a torn read of a uint64_t cannot happen on x86-64/aarch64.
#include <array>
#include <cstdint>

#include "frontdoor/core/error.hpp"

namespace frontdoor::server {

struct WorkerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_rejected = 0;  // over server.max_connections
  std::uint64_t requests = 0;
  std::uint64_t upstream_connects = 0;
  std::uint64_t upstream_reuses = 0;
  std::uint64_t upstream_stale_retries = 0;
  std::uint64_t upstream_retries = 0;  // attempts sent to another endpoint (after a failure)
  std::array<std::uint64_t, 6> responses_by_class{};  // index = status / 100 (0: none sent)
  std::array<std::uint64_t, static_cast<std::size_t>(Error::internal) + 1> errors{};
  std::uint64_t bytes_from_clients = 0;
  std::uint64_t bytes_to_clients = 0;

  WorkerStats& operator+=(const WorkerStats& o) noexcept {
    connections_accepted += o.connections_accepted;
    connections_rejected += o.connections_rejected;
    requests += o.requests;
    upstream_connects += o.upstream_connects;
    upstream_reuses += o.upstream_reuses;
    upstream_stale_retries += o.upstream_stale_retries;
    upstream_retries += o.upstream_retries;
    for (std::size_t i = 0; i < responses_by_class.size(); ++i) responses_by_class[i] += o.responses_by_class[i];
    for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
    bytes_from_clients += o.bytes_from_clients;
    bytes_to_clients += o.bytes_to_clients;
    return *this;
  }
};

}  // namespace frontdoor::server
