#include "frontdoor/ratelimit/global_limiter.hpp"

#include <algorithm>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <charconv>
#include <cstdio>

namespace frontdoor::ratelimit {
namespace {

// GCRA over Redis' clock, granting up to ARGV[3] tokens at once.
// KEYS[1]: the key. ARGV: interval_us, tolerance_us (burst x interval), tokens wanted.
// Returns {granted, left after the grant, retry_after_us (when none granted), reset_after_us}.
// The theoretical arrival time is stored with %d: Lua's default number format would round it.
// replicate_commands: a write after TIME needs effects replication before Redis 5 (a no-op since).
constexpr const char* kScript = R"lua(
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then tat = math.max(tonumber(stored), now) end
local free = math.floor((now + tolerance - tat) / interval)
local grant = math.max(0, math.min(want, free))
if grant > 0 then
  tat = tat + grant * interval
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end
local retry = 0
if grant == 0 then retry = tat - tolerance + interval - now end
return {grant, math.max(0, free - grant), retry, tat - now}
)lua";

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha1(), nullptr);
  std::string hex;
  static constexpr char kDigits[] = "0123456789abcdef";
  for (unsigned i = 0; i < size; ++i) {
    hex += kDigits[digest[i] >> 4];
    hex += kDigits[digest[i] & 15];
  }
  return hex;
}

std::size_t round_up_pow2(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

constexpr std::size_t kMaxProbe = 8;

}  // namespace

struct GlobalRateLimiter::Lease {
  GlobalRateLimiter* owner = nullptr;
  std::uint64_t key = 0;            // 0: never used
  GlobalLimitParams params;         // of the latest request
  std::int64_t tokens = 0;          // leased, not spent
  std::int64_t wanted = 0;          // costs of the requests waiting
  std::uint64_t remaining = 0;      // the key's tokens left in Redis at the last fetch
  TimePoint expires{};              // leased tokens are dropped from then
  TimePoint denied_until{};         // Redis had none: refuse locally until then
  TimePoint fallback_until{};       // the last fetch failed: fallback policy until then
  TimePoint full_at{};              // the key is back to a full burst in Redis
  bool fetching = false;
  Waiter waiters;              // sentinel

  bool reclaimable(TimePoint now) const noexcept {
    return !fetching && !waiters.waiting() && expires <= now && denied_until <= now && fallback_until <= now;
  }
  // When nothing of it counts any more.
  TimePoint ends() const noexcept { return std::max({expires, denied_until, fallback_until}); }
};

GlobalRateLimiter::GlobalRateLimiter(boost::asio::io_context& io, io::RedisOptions redis, std::string key_prefix,
                                     std::size_t lease_slots)
    : io_(io),
      redis_(io, std::move(redis)),
      key_prefix_(std::move(key_prefix)),
      script_sha_(sha1_hex(kScript)),
      leases_(new Lease[round_up_pow2(std::max<std::size_t>(lease_slots, kMaxProbe))]),
      mask_(round_up_pow2(std::max<std::size_t>(lease_slots, kMaxProbe)) - 1) {
  for (std::size_t i = 0; i <= mask_; ++i) leases_[i].owner = this;
}

GlobalRateLimiter::~GlobalRateLimiter() {
  stop();
  *alive_ = false;
}

void GlobalRateLimiter::stop() {
  redis_.stop();  // pending fetches are answered (with nothing) while the leases still exist
}

GlobalRateLimiter::Lease* GlobalRateLimiter::find(std::uint64_t key, TimePoint now) noexcept {
  key |= 1;  // 0 marks a slot never used
  Lease* free_slot = nullptr;
  Lease* victim = nullptr;  // the idle lease nearest its end, should every slot be live
  for (std::size_t i = 0; i < kMaxProbe; ++i) {
    Lease& lease = leases_[(key + i) & mask_];
    if (lease.key == key) return &lease;
    if (free_slot == nullptr && (lease.key == 0 || lease.reclaimable(now))) free_slot = &lease;
    if (!lease.fetching && !lease.waiters.waiting() && (victim == nullptr || lease.ends() < victim->ends()))
      victim = &lease;
  }
  if (free_slot == nullptr) {
    // A flood of fresh keys must not turn a healthy Redis into the fallback policy for everyone
    // (503s under `deny`, no limit under `allow`). Evicting a lease is safe: Redis holds the count,
    // so the evicted key's next request asks it again; its unspent tokens are lost (stricter, never
    // looser). Only when every slot waits on Redis is there no room (table_full).
    if (victim == nullptr) return nullptr;
    ++counters_.evicted;
    free_slot = victim;
  }
  Lease& lease = *free_slot;
  lease.key = key;
  lease.tokens = lease.wanted = 0;
  lease.remaining = 0;
  lease.expires = lease.denied_until = lease.fallback_until = lease.full_at = TimePoint{};
  return &lease;
}

GlobalDecision GlobalRateLimiter::acquire(std::uint64_t key, const GlobalLimitParams& limit, std::uint32_t cost,
                                          TimePoint now, Waiter& waiter) {
  GlobalDecision result;
  if (!redis_.connected()) {
    ++counters_.unavailable;
    return result;
  }
  Lease* lease = find(key, now);
  if (lease == nullptr) {
    ++counters_.table_full;
    ++counters_.unavailable;
    return result;
  }
  if (now < lease->fallback_until) {
    ++counters_.unavailable;
    return result;
  }
  lease->params = limit;
  if (lease->expires <= now) lease->tokens = 0;
  auto& d = result.decision;
  d.reset_after = lease->full_at > now ? lease->full_at - now : Duration{};
  if (lease->tokens >= cost) {
    lease->tokens -= cost;
    // Ask for the next batch before this one runs out, so a busy key does not wait.
    if (limit.batch > 1 && lease->tokens < limit.batch / 2 && !lease->fetching) fetch(*lease);
    result.outcome = GlobalOutcome::allowed;
    d.allowed = true;
    d.remaining = lease->remaining + static_cast<std::uint64_t>(lease->tokens);
    return result;
  }
  if (now < lease->denied_until) {
    ++counters_.refused_locally;
    result.outcome = GlobalOutcome::refused;
    d.retry_after = lease->denied_until - now;
    return result;
  }
  waiter.enqueue(lease->waiters);
  lease->wanted += cost;
  ++counters_.waits;
  if (!lease->fetching) fetch(*lease);
  if (!lease->fetching) {  // could not even send: Redis just went away
    waiter.unlink();
    lease->wanted -= cost;
    ++counters_.unavailable;
    return result;
  }
  result.outcome = GlobalOutcome::wait;
  return result;
}

void GlobalRateLimiter::fetch(Lease& lease, bool by_source) {
  char key[160];
  const int key_size = std::snprintf(key, sizeof key, "%.64srl:%016llx", key_prefix_.c_str(),
                                     static_cast<unsigned long long>(lease.key));
  const auto want = std::max<std::int64_t>(lease.params.batch, lease.wanted);
  char interval[24], tolerance[24], wanted[24];
  const auto n_interval = std::to_chars(interval, interval + sizeof interval, lease.params.interval_us).ptr - interval;
  const auto n_tolerance =
      std::to_chars(tolerance, tolerance + sizeof tolerance, lease.params.tolerance_us).ptr - tolerance;
  const auto n_wanted = std::to_chars(wanted, wanted + sizeof wanted, want).ptr - wanted;
  // EVALSHA normally; the script's source when Redis does not know it yet (it then caches it). On a
  // new connection (a restarted or failed-over Redis has an empty script cache) the source goes at
  // once: the NOSCRIPT round trip cost a second command_timeout.
  const bool send_source = by_source || script_known_on_ != redis_.counters().connects;
  const std::string_view args[] = {send_source ? "EVAL" : "EVALSHA",
                                   send_source ? std::string_view(kScript) : std::string_view(script_sha_),
                                   "1",
                                   std::string_view(key, static_cast<std::size_t>(key_size)),
                                   std::string_view(interval, static_cast<std::size_t>(n_interval)),
                                   std::string_view(tolerance, static_cast<std::size_t>(n_tolerance)),
                                   std::string_view(wanted, static_cast<std::size_t>(n_wanted))};
  if (redis_.command(args, &GlobalRateLimiter::on_fetched, &lease)) {
    lease.fetching = true;
    if (!by_source) ++counters_.fetches;  // the source is a resend of the same fetch
  }
}

void GlobalRateLimiter::on_fetched(void* user, const redisReply* reply) {
  Lease& lease = *static_cast<Lease*>(user);
  lease.fetching = false;
  GlobalRateLimiter& self = *lease.owner;
  if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && std::string_view(reply->str, reply->len).starts_with("NOSCRIPT")) {
    self.fetch(lease, true);
    if (lease.fetching) return;
    reply = nullptr;
  }
  self.settle(lease, reply, resilience::Clock::now());
}

void GlobalRateLimiter::settle(Lease& lease, const redisReply* reply, TimePoint now) {
  const bool valid = reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
                     reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[1]->type == REDIS_REPLY_INTEGER &&
                     reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[3]->type == REDIS_REPLY_INTEGER;
  if (!valid) {
    ++counters_.fetch_failures;
    lease.fallback_until = now + kFailureHoldoff;
    if (reply != nullptr && now - last_error_log_ > std::chrono::seconds(10)) {
      last_error_log_ = now;
      spdlog::warn("global rate limit: unexpected Redis reply ({}); using the fallback policy for 1 s",
                   reply->type == REDIS_REPLY_ERROR ? std::string_view(reply->str, reply->len) : "not 4 integers");
    }
  } else {
    script_known_on_ = redis_.counters().connects;  // it ran: this connection's Redis has it
    const auto granted = std::max<long long>(0, reply->element[0]->integer);
    if (lease.expires <= now) lease.tokens = 0;
    lease.tokens += granted;
    lease.expires = now + kLeaseLifetime;
    lease.remaining = static_cast<std::uint64_t>(std::max<long long>(0, reply->element[1]->integer));
    lease.full_at = now + std::chrono::microseconds(std::max<long long>(0, reply->element[3]->integer));
    if (granted == 0)
      lease.denied_until = now + std::chrono::microseconds(std::max<long long>(1, reply->element[2]->integer));
  }
  lease.wanted = 0;
  wake(lease);
}

void GlobalRateLimiter::wake(Lease& lease) {
  ready_.splice_from(lease.waiters);
  if (wake_posted_ || !ready_.waiting()) return;
  wake_posted_ = true;
  boost::asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    wake_posted_ = false;
    // Each waiter asks again (and may queue again, on a new fetch): take them one at a time.
    while (ready_.waiting()) {
      Waiter& waiter = *ready_.next;
      waiter.unlink();
      waiter.wake(waiter);
    }
  });
}

}  // namespace frontdoor::ratelimit
