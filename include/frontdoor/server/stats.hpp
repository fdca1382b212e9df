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
  std::uint64_t upstream_retries = 0;  // attempts sent to another endpoint after a connect failure  // pooled connection found closed, request resent
  std::array<std::uint64_t, 6> responses_by_class{};  // index = status / 100 (0: none sent)
  std::array<std::uint64_t, static_cast<std::size_t>(Error::internal) + 1> errors{};
  std::uint64_t bytes_from_clients = 0;
  std::uint64_t bytes_to_clients = 0;
};

}  // namespace frontdoor::server
