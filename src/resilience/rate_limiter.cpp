#include "frontdoor/resilience/rate_limiter.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>

#include "frontdoor/resilience/hash.hpp"
#include "frontdoor/resilience/random.hpp"

namespace frontdoor::resilience {

namespace {

constexpr Duration kNever = Duration::max();

// Seconds (non-negative) to a Duration, rounded up so a Retry-After is never too early.
Duration ceil_seconds(double s) noexcept {
  if (!(s > 0)) return Duration::zero();
  const double ns = std::ceil(s * 1e9);
  if (ns >= static_cast<double>(kNever.count())) return kNever;
  return Duration(static_cast<Duration::rep>(ns));
}

double seconds(Duration d) noexcept { return std::chrono::duration<double>(d).count(); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TokenBucket::TokenBucket(const TokenBucketConfig& config, TimePoint now) noexcept
    : config_{std::max(config.rate_per_second, 0.0), std::max(config.burst, 0.0)}, tokens_(config_.burst), last_(now) {}

double TokenBucket::tokens(TimePoint now) const noexcept {
  if (now <= last_) return tokens_;
  return std::min(config_.burst, tokens_ + seconds(now - last_) * config_.rate_per_second);
}

LimitDecision TokenBucket::try_acquire(TimePoint now, std::uint32_t cost) noexcept {
  tokens_ = tokens(now);
  if (now > last_) last_ = now;
  constexpr double kEpsilon = 1e-9;  // 0.1 + 0.2 tokens is enough for a cost of 0.3
  const double rate = config_.rate_per_second;
  const double c = cost;
  LimitDecision d;
  if (tokens_ + kEpsilon >= c) {
    tokens_ = std::max(0.0, tokens_ - c);
    d.allowed = true;
  } else {
    d.retry_after = (c > config_.burst + kEpsilon || rate <= 0) ? kNever : ceil_seconds((c - tokens_) / rate);
  }
  d.remaining = static_cast<std::uint64_t>(std::floor(tokens_ + kEpsilon));
  const double missing = config_.burst - tokens_;
  d.reset_after = missing <= kEpsilon ? Duration::zero() : rate <= 0 ? kNever : ceil_seconds(missing / rate);
  return d;
}

// ---------------------------------------------------------------------------------------------
SlidingWindow::SlidingWindow(const SlidingWindowConfig& config) noexcept
    : config_{config.limit, std::max<Duration>(config.window, Duration(1))} {}

namespace {

double window_fraction(const SlidingWindowConfig& config, std::int64_t index, TimePoint now) noexcept {
  const std::int64_t w = config.window.count();
  const std::int64_t into = now.time_since_epoch().count() - index * w;
  return std::clamp(static_cast<double>(into) / static_cast<double>(w), 0.0, 1.0);
}

void advance_window(const SlidingWindowConfig& config, SlidingWindow::State& s, TimePoint now) noexcept {
  const std::int64_t index = floor_div(now.time_since_epoch().count(), config.window.count());
  if (index <= s.index) return;  // same window, or a lagging clock: count in the current one
  s.previous = index == s.index + 1 ? s.current : 0;
  s.current = 0;
  s.index = index;
}

}  // namespace

double SlidingWindow::fraction(TimePoint now) const noexcept { return window_fraction(config_, index_, now); }

void SlidingWindow::advance(TimePoint now) noexcept {
  State s{index_, previous_, current_};
  advance_window(config_, s, now);
  index_ = s.index;
  previous_ = s.previous;
  current_ = s.current;
}

double SlidingWindow::estimate(TimePoint now) noexcept {
  advance(now);
  return static_cast<double>(previous_) * (1.0 - fraction(now)) + static_cast<double>(current_);
}

LimitDecision SlidingWindow::try_acquire(TimePoint now, std::uint32_t cost) noexcept {
  State s{index_, previous_, current_};
  const auto d = decide(config_, s, now, cost);
  index_ = s.index;
  previous_ = s.previous;
  current_ = s.current;
  return d;
}

LimitDecision SlidingWindow::decide(const SlidingWindowConfig& config, State& state, TimePoint now,
                                    std::uint32_t cost) noexcept {
  constexpr double kEpsilon = 1e-9;
  advance_window(config, state, now);
  const double f = window_fraction(config, state.index, now);
  const double est = static_cast<double>(state.previous) * (1.0 - f) + static_cast<double>(state.current);
  const double limit = static_cast<double>(config.limit);
  const double c = cost;
  const Duration window = config.window;
  const Duration left = std::chrono::duration_cast<Duration>(window * (1.0 - f));
  LimitDecision d;
  double after = est;
  if (est + c <= limit + kEpsilon) {
    state.current += cost;
    after += c;
    d.allowed = true;
  } else if (c > limit) {
    d.retry_after = kNever;
  } else {
    // Either the previous window's share fades enough before this window ends...
    const double cur = static_cast<double>(state.current), prev = static_cast<double>(state.previous);
    bool found = false;
    if (prev > 0 && cur + c <= limit) {
      const double t = (est + c - limit) / prev;  // in windows
      if (f + t <= 1.0) {
        d.retry_after = ceil_seconds(t * seconds(window));
        found = true;
      }
    }
    // ... or it waits for the next window, where this window's count becomes the fading one.
    if (!found) {
      const double into_next = cur > 0 ? std::max(0.0, 1.0 - (limit - c) / cur) : 0.0;
      d.retry_after = left + ceil_seconds(into_next * seconds(window));
    }
  }
  d.remaining = static_cast<std::uint64_t>(std::max(0.0, std::floor(limit - after + kEpsilon)));
  d.reset_after = state.current > 0 ? left + window : state.previous > 0 ? left : Duration::zero();
  return d;
}

// ---------------------------------------------------------------------------------------------
namespace {
constexpr std::uint64_t kSwTagBits = 24;
constexpr int kSwMaxAttempts = 256;

std::uint64_t sw_pack(std::uint64_t tag, const SlidingWindow::State& s) noexcept {
  return tag << 40 | (static_cast<std::uint64_t>(s.index) & 0xff) << 32 |
         std::min(s.previous, SlidingWindowTable::kMaxCount) << 16 | std::min(s.current, SlidingWindowTable::kMaxCount);
}
std::uint64_t sw_tag(std::uint64_t word) noexcept { return word >> 40; }
// The state a word holds, its window number rebuilt from its low 8 bits near `now_index`; a window two
// or more behind (or a free word) holds nothing that counts. A word one window *ahead* was written by
// a thread whose clock already crossed the boundary: it is live, and this caller counts into it (as
// SlidingWindow does for a lagging clock) rather than wiping it.
SlidingWindow::State sw_unpack(std::uint64_t word, std::int64_t now_index, bool& live) noexcept {
  const auto behind = static_cast<std::int8_t>(static_cast<std::uint8_t>(static_cast<std::uint64_t>(now_index) - (word >> 32)));
  live = word != 0 && behind >= -1 && behind <= 1;
  if (!live) return {now_index, 0, 0};
  return {now_index - behind, (word >> 16) & 0xffff, word & 0xffff};
}

// How many requests a live slot still counts (its sliding estimate now, `f` into the current window).
double sw_remembered(const SlidingWindow::State& s, std::int64_t now_index, double f) noexcept {
  const double prev = static_cast<double>(s.previous), cur = static_cast<double>(s.current);
  if (s.index >= now_index) return prev * (1.0 - f) + cur;
  return cur * (1.0 - f);  // last window's count is the fading one now
}

// Where a key lives in the table: its tag, and the first slot of its probe window.
struct SwPlace {
  std::uint64_t tag;
  std::size_t home;
};
SwPlace sw_place(std::uint64_t key, std::size_t mask) noexcept {
  const std::uint64_t h = mix64(key);
  return {std::max<std::uint64_t>(h >> (64 - kSwTagBits), 1), static_cast<std::size_t>(h) & mask};
}
}  // namespace

SlidingWindowTable::SlidingWindowTable(std::size_t slots, std::uint32_t max_probe) : slots_(slots, max_probe) {}

void SlidingWindowTable::refund(std::uint64_t key, const SlidingWindowConfig& config, TimePoint now,
                                std::uint32_t cost) noexcept {
  const auto [tag, home] = sw_place(key, slots_.mask);
  const std::int64_t now_index = floor_div(now.time_since_epoch().count(), config.window.count());
  for (int attempt = 0; attempt < kSwMaxAttempts; ++attempt) {
    std::size_t found = SIZE_MAX;
    std::uint64_t word = 0;
    for (std::uint32_t i = 0; i < slots_.max_probe && found == SIZE_MAX; ++i) {
      const std::size_t slot = (home + i) & slots_.mask;
      word = slots_.words[slot].load(std::memory_order_acquire);
      bool live = false;
      sw_unpack(word, now_index, live);
      if (live && sw_tag(word) == tag) found = slot;
    }
    if (found == SIZE_MAX) return;
    bool live = false;
    auto state = sw_unpack(word, now_index, live);
    if (state.index != now_index) return;  // counted in a window that has passed: it fades on its own
    state.current -= std::min<std::uint64_t>(state.current, cost);
    if (slots_.words[found].compare_exchange_strong(word, sw_pack(tag, state), std::memory_order_acq_rel,
                                                    std::memory_order_acquire))
      return;
  }
}

LimitDecision SlidingWindowTable::acquire(std::uint64_t key, const SlidingWindowConfig& config, TimePoint now,
                                          std::uint32_t cost) noexcept {
  const auto [tag, home] = sw_place(key, slots_.mask);
  const std::int64_t now_index = floor_div(now.time_since_epoch().count(), config.window.count());
  const double f = window_fraction(config, now_index, now);
  for (int attempt = 0; attempt < kSwMaxAttempts; ++attempt) {
    std::size_t found = SIZE_MAX, free_slot = SIZE_MAX, victim = SIZE_MAX;
    std::uint64_t found_word = 0, free_word = 0, victim_word = 0;
    double victim_remembers = 0;
    for (std::uint32_t i = 0; i < slots_.max_probe; ++i) {
      const std::size_t slot = (home + i) & slots_.mask;
      const std::uint64_t word = slots_.words[slot].load(std::memory_order_acquire);
      bool live = false;
      const auto s = sw_unpack(word, now_index, live);
      if (live && sw_tag(word) == tag) {
        found = slot;
        found_word = word;
        break;
      }
      if (!live && free_slot == SIZE_MAX) {
        free_slot = slot;
        free_word = word;
      } else if (live) {
        // The victim is the key remembering least: a flood of new keys pushes out its own, never a
        // key held at its limit (forgetting that one would hand it a fresh quota).
        const double remembers = sw_remembered(s, now_index, f);
        if (victim == SIZE_MAX || remembers < victim_remembers) {
          victim = slot;
          victim_word = word;
          victim_remembers = remembers;
        }
      }
    }
    std::size_t target = found;
    std::uint64_t expected = found_word;
    SlidingWindow::State state{now_index, 0, 0};
    if (found != SIZE_MAX) {
      bool live = false;
      state = sw_unpack(found_word, now_index, live);
    } else if (free_slot != SIZE_MAX) {
      target = free_slot;
      expected = free_word;
    } else {
      target = victim;
      expected = victim_word;
    }
    const auto d = SlidingWindow::decide(config, state, now, cost);
    if (!d.allowed) return d;  // nothing to record
    if (slots_.words[target].compare_exchange_strong(expected, sw_pack(tag, state), std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
      if (found == SIZE_MAX && free_slot == SIZE_MAX) slots_.evictions.fetch_add(1, std::memory_order_relaxed);
      return d;
    }
  }
  slots_.contention.fetch_add(1, std::memory_order_relaxed);
  LimitDecision d;
  d.allowed = true;
  return d;
}

// ---------------------------------------------------------------------------------------------
namespace {
constexpr std::int64_t kMaxNs = std::numeric_limits<std::int64_t>::max() / 4;
std::int64_t saturating_mul(std::int64_t a, std::int64_t b) noexcept {
  if (a == 0 || b == 0) return 0;
  return a > kMaxNs / b ? kMaxNs : a * b;
}
}  // namespace

LeakyBucket::LeakyBucket(const LeakyBucketConfig& config) noexcept {
  const double rate = config.rate_per_second > 0 ? config.rate_per_second : 1e-9;
  interval_ns_ = std::clamp<std::int64_t>(std::llround(std::min(1e9 / rate, 1e18)), 1, kMaxNs);
  tolerance_ns_ = saturating_mul(interval_ns_, std::max<std::uint32_t>(config.burst, 1));
}

LimitDecision LeakyBucket::try_acquire(TimePoint now, std::uint32_t cost) noexcept {
  const std::int64_t now_ns = now.time_since_epoch().count();
  const std::int64_t tat = std::max(tat_ns_, now_ns);
  const std::int64_t backlog = tat - now_ns;  // queued work, in time
  const std::int64_t inc = saturating_mul(interval_ns_, cost);
  LimitDecision d;
  if (inc > tolerance_ns_ - backlog) {
    d.retry_after = inc > tolerance_ns_ ? kNever : Duration(backlog + inc - tolerance_ns_);
    d.remaining = static_cast<std::uint64_t>((tolerance_ns_ - backlog) / interval_ns_);
    d.reset_after = Duration(backlog);
    return d;
  }
  tat_ns_ = tat + inc;
  d.allowed = true;
  d.delay = Duration(backlog);
  d.remaining = static_cast<std::uint64_t>((tolerance_ns_ - backlog - inc) / interval_ns_);
  d.reset_after = Duration(backlog + inc);
  return d;
}

// ---------------------------------------------------------------------------------------------
GcraPolicy::GcraPolicy(double rate_per_second, std::uint32_t burst) noexcept {
  constexpr double kFraction = 4294967296.0;  // 2^32
  // At least 2^-16 of a unit (16 billion requests a second): never a free request.
  const double units = std::clamp(rate_per_second > 0 ? 1e9 / rate_per_second / static_cast<double>(kUnitNs)
                                                      : static_cast<double>(kMaxTolerance),
                                  1.0 / 65536, static_cast<double>(kMaxTolerance));
  interval = static_cast<std::int64_t>(units);
  interval_fraction = static_cast<std::uint32_t>(std::min((units - static_cast<double>(interval)) * kFraction,
                                                          kFraction - 1));
  this->burst = std::max<std::uint32_t>(burst, 1);
  tolerance = std::min(increment(this->burst, 0).room, kMaxTolerance);
}

GcraPolicy::Increment GcraPolicy::increment(std::uint32_t cost, std::uint64_t random) const noexcept {
  if (interval > 0 && cost > static_cast<std::uint64_t>(kMaxTolerance / interval))
    return {kMaxTolerance + 1, kMaxTolerance + 1};
  // cost < 2^32 and the fraction < 2^32: their product fits in 64 bits.
  const std::uint64_t fraction = static_cast<std::uint64_t>(cost) * interval_fraction;
  const std::int64_t whole = interval * static_cast<std::int64_t>(cost) + static_cast<std::int64_t>(fraction >> 32);
  const std::uint64_t part = fraction & 0xffffffffULL;
  return {whole + (part != 0 ? 1 : 0), whole + ((random >> 32) < part ? 1 : 0)};
}

std::uint64_t GcraPolicy::fits(std::int64_t room) const noexcept {
  if (room <= 0) return 0;
  const double per_request = static_cast<double>(interval) + interval_fraction / 4294967296.0;
  return std::min<std::uint64_t>(static_cast<std::uint64_t>(static_cast<double>(room) / per_request), burst);
}

namespace {

constexpr int kTimeBits = 44;
constexpr std::uint64_t kTimeMask = (std::uint64_t{1} << kTimeBits) - 1;
constexpr std::size_t kNone = static_cast<std::size_t>(-1);
constexpr int kMaxAttempts = 256;

constexpr std::uint64_t pack(std::uint64_t tag, std::uint64_t time_units) noexcept {
  return (tag << kTimeBits) | (time_units & kTimeMask);
}
constexpr std::uint64_t tag_of(std::uint64_t word) noexcept { return word >> kTimeBits; }

// How far the slot's arrival time is ahead of now, in units (negative: in the past), modulo 2^44.
constexpr std::int64_t ahead(std::uint64_t word, std::uint64_t now_units) noexcept {
  const std::uint64_t d = ((word & kTimeMask) - now_units) & kTimeMask;
  return d >= (kTimeMask >> 1) + 1 ? static_cast<std::int64_t>(d) - static_cast<std::int64_t>(kTimeMask + 1)
                                   : static_cast<std::int64_t>(d);
}

constexpr bool live(std::uint64_t word, std::uint64_t now_units) noexcept {
  return word != 0 && ahead(word, now_units) > 0;
}

std::uint64_t to_units(TimePoint now) noexcept {
  return static_cast<std::uint64_t>(floor_div(now.time_since_epoch().count(), GcraPolicy::kUnitNs));
}

// For the fraction of an interval (GcraPolicy::increment): one generator per thread, no lock.
std::uint64_t next_random() noexcept {
  thread_local SplitMix64 generator(mix64(reinterpret_cast<std::uintptr_t>(&generator)) ^
                                    static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  return generator.next();
}

Duration from_units(std::int64_t units) noexcept {
  return std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(units * GcraPolicy::kUnitNs));
}

}  // namespace

struct LimiterTable::Scan {
  std::size_t found = kNone, free = kNone, victim = kNone;
  std::uint64_t found_word = 0, free_word = 0, victim_word = 0;
};

ProbedSlots::ProbedSlots(std::size_t slots, std::uint32_t probe_window)
    : words(std::make_unique<std::atomic<std::uint64_t>[]>(std::bit_ceil(std::max<std::size_t>(slots, 2)))),
      mask(std::bit_ceil(std::max<std::size_t>(slots, 2)) - 1),
      max_probe(static_cast<std::uint32_t>(std::clamp<std::size_t>(probe_window, 1, mask + 1))) {
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
  for (std::size_t i = 0; i <= mask; ++i) words[i].store(0, std::memory_order_relaxed);
}

LimiterTableCounters ProbedSlots::counters() const noexcept {
  return {evictions.load(std::memory_order_relaxed), contention.load(std::memory_order_relaxed)};
}

LimiterTable::LimiterTable(std::size_t slots, std::uint32_t max_probe) : slots_(slots, max_probe) {}

LimiterTable::Scan LimiterTable::scan(std::uint64_t tag, std::size_t home, std::uint64_t now_units) const noexcept {
  Scan s;
  std::int64_t victim_ahead = std::numeric_limits<std::int64_t>::max();
  for (std::uint32_t k = 0; k < slots_.max_probe; ++k) {
    const std::size_t i = (home + k) & slots_.mask;
    const std::uint64_t w = slots_.words[i].load(std::memory_order_acquire);
    if (w != 0 && tag_of(w) == tag) {
      s.found = i;
      s.found_word = w;
      return s;
    }
    if (!live(w, now_units)) {
      if (s.free == kNone) {
        s.free = i;
        s.free_word = w;
      }
    } else if (const std::int64_t a = ahead(w, now_units); a < victim_ahead) {
      victim_ahead = a;
      s.victim = i;
      s.victim_word = w;
    }
  }
  return s;
}

void LimiterTable::refund(std::uint64_t key, const GcraPolicy& policy, TimePoint now, std::uint32_t cost,
                          std::uint64_t draw) noexcept {
  const std::uint64_t h = mix64(key);
  const std::uint64_t tag = std::max<std::uint64_t>(h >> kTimeBits, 1);
  const std::size_t home = static_cast<std::size_t>(h) & slots_.mask;
  const std::uint64_t now_units = to_units(now);
  const std::int64_t inc = policy.increment(cost, draw != 0 ? draw : next_random()).move;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    Scan s = scan(tag, home, now_units);
    if (s.found == kNone) return;  // expired or evicted: nothing left to give back
    const std::int64_t backlog = std::max<std::int64_t>(ahead(s.found_word, now_units), 0);
    const std::int64_t kept = std::max<std::int64_t>(backlog - inc, 0);
    if (slots_.words[s.found].compare_exchange_strong(s.found_word, pack(tag, now_units + static_cast<std::uint64_t>(kept)),
                                                      std::memory_order_acq_rel, std::memory_order_acquire))
      return;
  }
}

LimitDecision LimiterTable::acquire(std::uint64_t key, const GcraPolicy& policy, TimePoint now,
                                    std::uint32_t cost, std::uint64_t draw) noexcept {
  const std::uint64_t h = mix64(key);
  const std::uint64_t tag = std::max<std::uint64_t>(h >> kTimeBits, 1);
  const std::size_t home = static_cast<std::size_t>(h) & slots_.mask;
  const std::uint64_t now_units = to_units(now);
  const auto [need, inc] = policy.increment(cost, draw != 0 ? draw : next_random());
  if (need > policy.tolerance) {
    LimitDecision d = peek(key, policy, now);
    d.allowed = false;
    d.retry_after = Duration::max();
    return d;
  }
  LimitDecision d;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    Scan s = scan(tag, home, now_units);
    if (s.found != kNone) {
      const std::int64_t backlog = std::max<std::int64_t>(ahead(s.found_word, now_units), 0);
      if (backlog + need > policy.tolerance) {
        d.retry_after = from_units(backlog + need - policy.tolerance);
        d.remaining = policy.fits(policy.tolerance - backlog);
        d.reset_after = from_units(backlog);
        return d;
      }
      if (slots_.words[s.found].compare_exchange_strong(s.found_word, pack(tag, now_units + static_cast<std::uint64_t>(backlog + inc)),
                                                  std::memory_order_acq_rel, std::memory_order_acquire)) {
        d.allowed = true;
        d.delay = from_units(backlog);
        d.remaining = policy.fits(policy.tolerance - backlog - inc);
        d.reset_after = from_units(backlog + inc);
        return d;
      }
      continue;  // someone else moved this key (or took the slot): look again
    }
    const bool evict = s.free == kNone;
    const std::size_t target = evict ? s.victim : s.free;
    std::uint64_t expected = evict ? s.victim_word : s.free_word;
    if (slots_.words[target].compare_exchange_strong(expected, pack(tag, now_units + static_cast<std::uint64_t>(inc)),
                                               std::memory_order_acq_rel, std::memory_order_acquire)) {
      if (evict) slots_.evictions.fetch_add(1, std::memory_order_relaxed);
      d.allowed = true;
      d.remaining = policy.fits(policy.tolerance - inc);
      d.reset_after = from_units(inc);
      return d;
    }
  }
  // Pathological contention on one probe window: fail open rather than spin (counted).
  slots_.contention.fetch_add(1, std::memory_order_relaxed);
  d.allowed = true;
  return d;
}

LimitDecision LimiterTable::peek(std::uint64_t key, const GcraPolicy& policy, TimePoint now) const noexcept {
  const std::uint64_t h = mix64(key);
  const std::uint64_t tag = std::max<std::uint64_t>(h >> kTimeBits, 1);
  const std::uint64_t now_units = to_units(now);
  const Scan s = scan(tag, static_cast<std::size_t>(h) & slots_.mask, now_units);
  const std::int64_t backlog = s.found == kNone ? 0 : std::max<std::int64_t>(ahead(s.found_word, now_units), 0);
  LimitDecision d;
  const std::int64_t need = policy.increment(1, 0).room;
  d.allowed = backlog + need <= policy.tolerance;
  if (!d.allowed) d.retry_after = from_units(backlog + need - policy.tolerance);
  d.remaining = policy.fits(policy.tolerance - backlog);
  d.reset_after = from_units(backlog);
  return d;
}

std::size_t LimiterTable::live_slots(TimePoint now) const noexcept {
  const std::uint64_t now_units = to_units(now);
  std::size_t n = 0;
  for (std::size_t i = 0; i <= slots_.mask; ++i) n += live(slots_.words[i].load(std::memory_order_relaxed), now_units) ? 1 : 0;
  return n;
}

}  // namespace frontdoor::resilience
