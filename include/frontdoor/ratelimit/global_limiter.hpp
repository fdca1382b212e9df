#pragma once
// GlobalRateLimiter: rate limits shared by every replica through Redis, without a Redis round trip
// per request. One per worker, on its thread, with its own Redis connection.
//
// Redis holds the truth: one GCRA state per (limit, key), updated by an atomic Lua script that
// reads Redis' own clock (replica clocks never disagree) and grants *up to* the number of tokens
// asked for. A worker leases tokens in batches (`batch`, about rate x lease_interval) and spends
// them locally; when a lease runs below half, it asks for the next batch ahead of need, so a busy
// key rarely waits. A request that finds no token parks (Waiter) until the fetch answers.
// When Redis grants nothing, the key is refused locally until the Retry-After Redis gave, again
// without a round trip.
//
// Error bound: tokens are taken from Redis before they are spent, so a replica never admits more
// than Redis granted. Leased tokens not spent within kLeaseLifetime are dropped (they were
// counted), so a key may get up to `batch` fewer requests per worker per lifetime than its limit:
// it errs on the strict side, never the loose one.
//
// Redis down, slow (command_timeout) or erroring: `acquire` answers `unavailable` and the caller
// applies the limit's on_redis_failure policy (local / allow / deny). Nothing waits on a dead Redis.
//
// Memory: a fixed table of leases (open addressing, short probe); a lease is reclaimable once its
// tokens expired and nothing waits on it. Redis keys expire when their state is back to full.
//
// Threads: the worker's thread only.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "frontdoor/io/redis_client.hpp"
#include "frontdoor/core/waiter.hpp"
#include "frontdoor/resilience/clock.hpp"
#include "frontdoor/resilience/rate_limiter.hpp"

namespace frontdoor::ratelimit {

using resilience::Duration;
using resilience::TimePoint;

// One global limit as Redis applies it (GCRA in microseconds).
struct GlobalLimitParams {
  std::int64_t interval_us = 0;   // 1 / rate
  std::int64_t tolerance_us = 0;  // burst x interval
  std::uint32_t batch = 1;        // tokens leased per fetch
};

enum class GlobalOutcome : std::uint8_t {
  allowed,      // a leased token was spent
  refused,      // Redis has none for this key until decision.retry_after
  wait,         // the waiter is queued; it is woken (from the event loop) when tokens arrive
  unavailable,  // Redis cannot answer now: apply the limit's fallback
};

struct GlobalDecision {
  GlobalOutcome outcome = GlobalOutcome::unavailable;
  resilience::LimitDecision decision;  // remaining / reset_after / retry_after, for the headers
};

struct GlobalLimiterCounters {
  std::uint64_t fetches = 0;         // lease requests sent to Redis
  std::uint64_t fetch_failures = 0;  // answered with no reply or an error
  std::uint64_t waits = 0;           // requests that waited for a fetch
  std::uint64_t refused_locally = 0; // refused from a cached "none left" without asking Redis
  std::uint64_t unavailable = 0;     // decided by the fallback policy
  std::uint64_t table_full = 0;      // no lease slot free for a key (fallback policy)
  std::uint64_t evicted = 0;         // leases dropped to make room for another key (Redis is asked again)

  GlobalLimiterCounters& operator+=(const GlobalLimiterCounters& o) noexcept {
    fetches += o.fetches;
    fetch_failures += o.fetch_failures;
    waits += o.waits;
    refused_locally += o.refused_locally;
    unavailable += o.unavailable;
    table_full += o.table_full;
    evicted += o.evicted;
    return *this;
  }
};

class GlobalRateLimiter {
 public:
  static constexpr Duration kLeaseLifetime = std::chrono::seconds(1);
  static constexpr Duration kFailureHoldoff = std::chrono::seconds(1);  // after a failed fetch

  // `lease_slots` is rounded up to a power of two.
  GlobalRateLimiter(boost::asio::io_context& io, io::RedisOptions redis, std::string key_prefix,
                    std::size_t lease_slots = 4096);
  ~GlobalRateLimiter();
  GlobalRateLimiter(const GlobalRateLimiter&) = delete;
  GlobalRateLimiter& operator=(const GlobalRateLimiter&) = delete;

  void start() { redis_.start(); }
  void stop();

  // `key` already mixes the limit's identity and the client's (hash_combine(limit id, client)).
  GlobalDecision acquire(std::uint64_t key, const GlobalLimitParams& limit, std::uint32_t cost, TimePoint now,
                         Waiter& waiter);

  const GlobalLimiterCounters& counters() const noexcept { return counters_; }
  const io::RedisCounters& redis_counters() const noexcept { return redis_.counters(); }
  bool redis_connected() const noexcept { return redis_.connected(); }

 private:
  struct Lease;
  Lease* find(std::uint64_t key, TimePoint now) noexcept;
  void fetch(Lease& lease, bool by_source = false);
  static void on_fetched(void* user, const redisReply* reply);
  void settle(Lease& lease, const redisReply* reply, TimePoint now);
  void wake(Lease& lease);

  boost::asio::io_context& io_;
  io::RedisClient redis_;
  std::string key_prefix_;
  std::string script_sha_;
  std::uint64_t script_known_on_ = ~std::uint64_t{0};  // redis_.counters().connects when the script last ran
  std::unique_ptr<Lease[]> leases_;
  std::size_t mask_;
  Waiter ready_;  // woken waiters, resumed from the event loop (never inside a hiredis callback)
  bool wake_posted_ = false;
  TimePoint last_error_log_{};
  GlobalLimiterCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace frontdoor::ratelimit
