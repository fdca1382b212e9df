#pragma once
// Rate limiting algorithms. Each answers one question — may a request of `cost` units pass at `now`? —
// with a LimitDecision that carries what the RateLimit / Retry-After headers need. They never learn
// what the key is (client IP, API key, path prefix, manifest): the stage decides.
//
//   TokenBucket    rate per second + burst; a request takes `cost` tokens. Single key, one thread.
//   SlidingWindow  `limit` per `window`, estimated from the previous and current fixed windows
//                  (previous x fraction of it still inside the sliding window + current). Single key.
//   LeakyBucket    GCRA (the leaky bucket as a meter): requests leak at `rate`, at most `burst` may be
//                  queued; `delay` tells a shaping caller how long to hold an admitted request.
//   LimiterTable   GCRA for many keys, shared by all worker threads: fixed capacity, lock-free
//                  compare-and-swap, idle state reclaimed. See its comment.
//
// Burst semantics are the same everywhere: from an idle state, exactly `burst` requests of cost 1 pass
// at the same instant. Construction may allocate (LimiterTable); nothing else does.
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>

#include "frontdoor/resilience/clock.hpp"

namespace frontdoor::resilience {

struct LimitDecision {
  bool allowed = false;
  std::uint64_t remaining = 0;   // cost-1 requests that would still pass now (after this one, if it passed)
  Duration retry_after{};        // when refused: the earliest this request could pass; Duration::max()
                                 // if it never can (cost above the burst). Zero when allowed.
  Duration reset_after{};        // until the limiter is back to its full quota (IETF RateLimit `t`)
  Duration delay{};              // LeakyBucket / LimiterTable: how long a shaping caller holds it
};

// ---------------------------------------------------------------------------------------------
struct TokenBucketConfig {
  double rate_per_second = 10;
  double burst = 20;  // bucket size; starts full
};

class TokenBucket {
 public:
  TokenBucket(const TokenBucketConfig& config, TimePoint now) noexcept;
  LimitDecision try_acquire(TimePoint now, std::uint32_t cost = 1) noexcept;
  double tokens(TimePoint now) const noexcept;

 private:
  TokenBucketConfig config_;
  double tokens_;
  TimePoint last_;
};

// ---------------------------------------------------------------------------------------------
struct SlidingWindowConfig {
  std::uint64_t limit = 100;
  Duration window = std::chrono::seconds(60);
};

class SlidingWindow {
 public:
  // The whole state of one key: what SlidingWindowTable packs into a word.
  struct State {
    std::int64_t index = 0;  // fixed window number (time / window)
    std::uint64_t previous = 0;
    std::uint64_t current = 0;
  };

  explicit SlidingWindow(const SlidingWindowConfig& config) noexcept;
  LimitDecision try_acquire(TimePoint now, std::uint32_t cost = 1) noexcept;
  // The sliding-window estimate of requests in the last `window`.
  double estimate(TimePoint now) noexcept;
  // The decision for `state` (advanced to `now`; counted in when allowed). `config.window` > 0.
  static LimitDecision decide(const SlidingWindowConfig& config, State& state, TimePoint now,
                              std::uint32_t cost) noexcept;

 private:
  void advance(TimePoint now) noexcept;
  double fraction(TimePoint now) const noexcept;  // of the current fixed window elapsed, 0..1

  SlidingWindowConfig config_;
  std::int64_t index_ = 0;  // fixed window number (time / window)
  std::uint64_t current_ = 0;
  std::uint64_t previous_ = 0;
};

struct LimiterTableCounters {
  std::uint64_t evictions = 0;   // a live key lost its state because its probe window was full
  std::uint64_t contention = 0;  // gave up after too many CAS retries (the request was allowed)
};

// The storage both shared tables are built on: a power-of-two array of atomic words (allocated once,
// zeroed), probed linearly over `max_probe` slots from a key's home, and the counters of what the
// probing had to give up. Any thread.
struct ProbedSlots {
  ProbedSlots(std::size_t slots, std::uint32_t max_probe);
  std::size_t capacity() const noexcept { return mask + 1; }
  LimiterTableCounters counters() const noexcept;

  std::unique_ptr<std::atomic<std::uint64_t>[]> words;
  std::size_t mask;
  std::uint32_t max_probe;
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> contention{0};
};

// ---------------------------------------------------------------------------------------------
// SlidingWindowTable: SlidingWindow for any number of keys in constant memory, shared by all workers,
// built like LimiterTable (open addressing over `max_probe` slots, compare-and-swap, no lock).
// Each slot is one 64-bit word: a 24-bit key tag | the low 8 bits of the window number | previous
// window's count (16 bits) | current window's count (16 bits) — so a limit is at most 65 535 per
// window. A slot whose window is two or more behind holds nothing that still counts: it is free.
// Error sources: keys sharing home region and tag (about max_probe / 2^24 per new key), an
// eviction (a full probe window), and a key idle for exactly a multiple of 256 windows, which reads
// its old counts back for one window (stricter, never looser).
class SlidingWindowTable {
 public:
  static constexpr std::uint64_t kMaxCount = 0xffff;

  explicit SlidingWindowTable(std::size_t slots, std::uint32_t max_probe = 16);
  LimitDecision acquire(std::uint64_t key, const SlidingWindowConfig& config, TimePoint now,
                        std::uint32_t cost = 1) noexcept;
  // Gives back what an allowed acquire counted (the request was refused by something after it):
  // out of the current window's count, if the key is still there and still in that window.
  void refund(std::uint64_t key, const SlidingWindowConfig& config, TimePoint now, std::uint32_t cost = 1) noexcept;
  std::size_t capacity() const noexcept { return slots_.capacity(); }
  LimiterTableCounters counters() const noexcept { return slots_.counters(); }

 private:
  ProbedSlots slots_;
};

// ---------------------------------------------------------------------------------------------
struct LeakyBucketConfig {
  double rate_per_second = 10;
  std::uint32_t burst = 20;  // queue depth bound
};

class LeakyBucket {
 public:
  explicit LeakyBucket(const LeakyBucketConfig& config) noexcept;
  LimitDecision try_acquire(TimePoint now, std::uint32_t cost = 1) noexcept;
  Duration interval() const noexcept { return Duration(interval_ns_); }

 private:
  std::int64_t interval_ns_;   // emission interval T = 1 / rate
  std::int64_t tolerance_ns_;  // burst x T
  std::int64_t tat_ns_ = std::numeric_limits<std::int64_t>::min();  // theoretical arrival time
};

// ---------------------------------------------------------------------------------------------
// A GCRA limit in the LimiterTable's time unit (4 µs); burst x interval is capped at kMaxTolerance
// (about 12.7 days). The interval is rarely a whole number of units (100 000/s is 2.5, 1 000 000/s a
// quarter): a request moves its key's arrival time by the whole units, and by one more with the
// probability of the fraction, so that the rate holds on average at any rate. Rounded to whole
// units, 100 000/s became 83 333/s, 200 000/s 250 000/s, and anything above 250 000/s 250 000/s.
struct GcraPolicy {
  static constexpr std::int64_t kUnitNs = 4000;
  static constexpr std::int64_t kMaxTolerance = std::int64_t{1} << 38;  // units

  GcraPolicy(double rate_per_second, std::uint32_t burst) noexcept;
  // A request of `cost`: the room it needs (its units rounded up), and the units it moves its key's
  // arrival time (the whole part, and one more with the probability of the fraction; `random`
  // uniform over 64 bits). Admission looks at `room` only: if it looked at the draw, the requests
  // that drew one unit less would be the ones let through, and the rate would round down again.
  struct Increment {
    std::int64_t room;
    std::int64_t move;
  };
  Increment increment(std::uint32_t cost, std::uint64_t random) const noexcept;
  // Cost-1 requests that fit in `room` units, on average, and never more than the burst (a
  // tolerance rounded up to whole units holds a little more than `burst` intervals).
  std::uint64_t fits(std::int64_t room) const noexcept;

  std::int64_t interval;              // whole units per request of cost 1 (0 above 250 000/s)...
  std::uint32_t interval_fraction;    // ...and this many 2^-32 of a unit
  std::int64_t tolerance;             // the room `burst` requests need, so a cost of `burst` always fits
  std::uint32_t burst;
};


// LimiterTable: per-key GCRA state for any number of keys in constant memory, shared by all workers
// (SO_REUSEPORT spreads one client over every worker, so per-worker limiters would multiply the limit).
//
// - `slots` (rounded up to a power of two) 64-bit atomic words, allocated once; nothing grows.
//   Each word packs a 20-bit tag of the key with its theoretical arrival time (44 bits of 4 µs units,
//   wrapping after 2.2 years). Open addressing, linear probing over at most `max_probe` slots.
// - A slot whose arrival time has passed is free: the key it held is back to a full quota, which is
//   exactly the state of a key never seen, so reclaiming it loses nothing. A flood of distinct keys
//   thus holds a slot each for only `cost x interval`.
// - When every slot of a key's probe window is live, the one closest to expiry is evicted (that key
//   gets a fresh quota early: counted in evictions). Size the table for the distinct keys you expect
//   within one tolerance (burst x interval).
// - Updates are a compare-and-swap loop on one word: per key, concurrent updates are linearisable
//   and a worker whose clock reading lags only restricts more. Error sources: keys with the same home
//   region and tag (about max_probe / 2^20 per new key) share a quota; an eviction; and a rare race
//   where two threads insert the same new key while a slot in front of it expires (at most one extra
//   burst).
// - The caller makes the key: hash_combine(policy id, hash64(client)) so policies do not share state.
//
// Threads: any thread, concurrently. Lock-free (each word is std::atomic<uint64_t>, always lock-free).
class LimiterTable {
 public:
  explicit LimiterTable(std::size_t slots, std::uint32_t max_probe = 16);

  // `draw`: the request's number for the fraction of an interval (GcraPolicy::increment), the same
  // at acquire and at refund so that a refund gives back exactly what was taken; 0: a fresh one.
  LimitDecision acquire(std::uint64_t key, const GcraPolicy& policy, TimePoint now,
                        std::uint32_t cost = 1, std::uint64_t draw = 0) noexcept;
  // The key's state without changing it (remaining, reset_after; allowed = a cost-1 request would pass).
  LimitDecision peek(std::uint64_t key, const GcraPolicy& policy, TimePoint now) const noexcept;
  // Gives back what an allowed acquire took (the request was refused by something after it): the
  // key's arrival time moves back by cost x interval, never before now.
  void refund(std::uint64_t key, const GcraPolicy& policy, TimePoint now, std::uint32_t cost = 1,
              std::uint64_t draw = 0) noexcept;

  std::size_t capacity() const noexcept { return slots_.capacity(); }
  std::size_t live_slots(TimePoint now) const noexcept;  // O(capacity): tests and metrics scrapes
  LimiterTableCounters counters() const noexcept { return slots_.counters(); }

 private:
  struct Scan;
  Scan scan(std::uint64_t tag, std::size_t home, std::uint64_t now_units) const noexcept;

  ProbedSlots slots_;
};

// The process-wide tables local limits live in, one per algorithm (shared by every worker).
struct LocalLimitTables {
  explicit LocalLimitTables(std::size_t slots) : gcra(slots), windows(slots) {}
  LimiterTable gcra;         // token_bucket, leaky_bucket
  SlidingWindowTable windows;  // sliding_window
};

}  // namespace frontdoor::resilience
