#include "frontdoor/pipeline/stages.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "frontdoor/resilience/hash.hpp"

namespace frontdoor::pipeline {
namespace {

// The request's number for the fraction of a limit's interval (resilience::GcraPolicy::increment):
// from its start, to the nanosecond, and the limit's key, so that a refund recomputes exactly what
// the acquire took. Never 0 (0 asks the table for a fresh number).
std::uint64_t fraction_draw(std::uint64_t key, const RequestContext& ctx) noexcept {
  return resilience::mix64(key ^ static_cast<std::uint64_t>(ctx.started.time_since_epoch().count())) | 1;
}

// Any header by name, those the parser classifies (Host, X-Forwarded-For...) included: a limit keyed
// on `header:Host` or a hash on `header:X-Forwarded-For` must see them. The first non-empty one.
std::string_view header_value(const RequestContext& ctx, std::string_view name) noexcept {
  for (const http::Header& h : *ctx.request->headers)
    if (http::iequals(h.name, name) && !h.value.empty()) return h.value;
  return {};
}

// The environment header is honoured only for the environments the listener lets clients choose:
// otherwise any client could reach another environment's manifests and limits by sending it.
std::string_view environment_of(const RequestContext& ctx) noexcept {
  if (ctx.allowed_environments.empty()) return ctx.default_environment;
  const auto value = header_value(ctx, ctx.snapshot->config.routing.environment_header);
  const bool key_part = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
  if (!key_part) return ctx.default_environment;
  for (const std::string& allowed : ctx.allowed_environments)
    if (allowed == "*" || allowed == value) return value;
  return ctx.default_environment;
}

// One response header line, built in place after the lines already there and kept only whole: a
// piece that does not fit drops the line, so a full buffer never leaves a fragment for the head
// writer to glue to the next header.
class HeaderLine {
 public:
  HeaderLine(RequestContext& ctx, std::string_view name) noexcept : ctx_(ctx), end_(ctx.response_headers_size) {
    add(name);
    add(": ");
  }
  // Room for `n` more bytes, the line's CRLF included.
  bool fits(std::size_t n) const noexcept { return !dropped_ && end_ + n + 2 <= ctx_.response_headers.size(); }
  HeaderLine& add(std::string_view piece) noexcept {
    if (!fits(piece.size())) {
      dropped_ = true;
      return *this;
    }
    std::memcpy(ctx_.response_headers.data() + end_, piece.data(), piece.size());
    end_ += piece.size();
    return *this;
  }
  // Decimal digits by to_chars: snprintf here cost about 2 % of a request's CPU (profiled).
  HeaderLine& add_number(std::uint64_t v) noexcept {
    char digits[20];
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    return add(std::string_view(digits, static_cast<std::size_t>(end - digits)));
  }
  void commit() noexcept {
    if (!fits(0)) return;
    std::memcpy(ctx_.response_headers.data() + end_, "\r\n", 2);
    ctx_.response_headers_size = static_cast<std::uint16_t>(end_ + 2);
  }

 private:
  RequestContext& ctx_;
  std::size_t end_;
  bool dropped_ = false;
};

std::uint64_t ceil_seconds(resilience::Duration d) noexcept {
  return static_cast<std::uint64_t>(std::chrono::ceil<std::chrono::seconds>(d).count());
}

void append_legacy_headers(RequestContext& ctx) noexcept {
  if (!ctx.snapshot->legacy_rate_limit_headers || ctx.legacy_limit == 0) return;
  const auto line = [&](std::string_view name, std::uint64_t v) { HeaderLine(ctx, name).add_number(v).commit(); };
  line("X-RateLimit-Limit", ctx.legacy_limit);
  line("X-RateLimit-Remaining", ctx.legacy_remaining);
  line("X-RateLimit-Reset", ctx.legacy_reset_seconds);
}

}  // namespace

namespace {

// A header a limit is keyed on, sent twice: which value the upstream reads (the first, the last,
// both) is its own business, and counting by any one of them lets a client send a fresh value
// beside the one the upstream honours. Such a request is refused (400), not counted.
constexpr std::uint64_t kRepeatedKeyHeader = 2;  // even: no hashed key is (they are | 1)

// The client's key under `limit`, hashed with a key the client does not know (SipHash): it cannot
// pick values that collide with another client's and spend their quota. 0: not identified;
// kRepeatedKeyHeader: refused.
std::uint64_t key_of(const ratelimit::CompiledRateLimit& limit, const RequestContext& ctx) noexcept {
  const auto& key = limit.global ? ctx.snapshot->global_limit_key : ctx.snapshot->local_limit_key;
  const auto hash = [&](std::string_view bytes) { return resilience::siphash24(key, bytes); };
  switch (limit.key) {
    case ratelimit::CompiledRateLimit::Key::client_ip: {
      const auto& a = ctx.client_address;
      if (!a.is_v6() || a.to_v6().is_v4_mapped()) return hash(ctx.client_ip) | 1;
      auto bytes = a.to_v6().to_bytes();
      // An IPv4 client behind NAT64 (64:ff9b::/96) or in an IPv4-compatible address (::/96) is one
      // IPv4 host, not one of a /64's: counted by its 32 bits, or every IPv4 user would share one key.
      static constexpr std::array<std::uint8_t, 12> kNat64{0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
      static constexpr std::array<std::uint8_t, 12> kCompatible{};
      if (std::equal(kNat64.begin(), kNat64.end(), bytes.begin()) ||
          std::equal(kCompatible.begin(), kCompatible.end(), bytes.begin()))
        return hash(std::string_view(reinterpret_cast<const char*>(bytes.data()) + 12, 4)) | 1;
      // An IPv6 host picks its address from a whole network (a /64, usually): count the network.
      for (std::size_t bit = limit.ipv6_prefix; bit < 128; ++bit)
        bytes[bit / 8] = static_cast<std::uint8_t>(bytes[bit / 8] & ~(0x80u >> (bit % 8)));
      return hash(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())) | 1;
    }
    case ratelimit::CompiledRateLimit::Key::header: {
      std::string_view value;
      int lines = 0;
      for (const http::Header& h : *ctx.request->headers) {
        if (!http::iequals(h.name, limit.header)) continue;
        if (++lines > 1) return kRepeatedKeyHeader;
        value = h.value;
      }
      return value.empty() ? 0 : hash(value) | 1;  // 0: not identified, not limited
    }
    case ratelimit::CompiledRateLimit::Key::path:
    case ratelimit::CompiledRateLimit::Key::manifest: {
      const auto route = manifest::split_route(ctx.request->target);
      auto combined = resilience::hash_combine(hash(route.project), hash(route.module));
      if (limit.key == ratelimit::CompiledRateLimit::Key::manifest)
        combined = resilience::hash_combine(combined, hash(environment_of(ctx)));
      return combined | 1;
    }
  }
  return 0;
}

}  // namespace

// A global limit's decision; nullopt means "Redis is waited for" (the request is suspended).
// Without Redis, the limit's on_redis_failure policy decides.
template <LimitScope Scope>
std::optional<resilience::LimitDecision> BasicRateLimitStage<Scope>::acquire_global(const ratelimit::CompiledRateLimit& limit,
                                                                        std::uint64_t key, RequestContext& ctx) noexcept {
  if (global_ != nullptr) {
    const ratelimit::GlobalLimitParams params{limit.interval_us, limit.tolerance_us, limit.batch};
    const auto global = global_->acquire(key, params, limit.cost, ctx.now, ctx.lease_waiter);
    switch (global.outcome) {
      case ratelimit::GlobalOutcome::allowed:
      case ratelimit::GlobalOutcome::refused: return global.decision;
      case ratelimit::GlobalOutcome::wait: return std::nullopt;
      case ratelimit::GlobalOutcome::unavailable: break;
    }
  }
  switch (limit.on_redis_failure) {
    case ratelimit::CompiledRateLimit::OnRedisFailure::local: break;
    case ratelimit::CompiledRateLimit::OnRedisFailure::allow: {
      resilience::LimitDecision open;
      open.allowed = true;
      open.remaining = limit.quota;
      return open;
    }
    case ratelimit::CompiledRateLimit::OnRedisFailure::deny: {
      resilience::LimitDecision closed;  // allowed = false, retry_after = 0: the caller answers 503
      return closed;
    }
  }
  return acquire_local(limit, key, ctx);
}

template <LimitScope Scope>
resilience::LimitDecision BasicRateLimitStage<Scope>::acquire_local(const ratelimit::CompiledRateLimit& limit, std::uint64_t key,
                                                                    const RequestContext& ctx) noexcept {
  if (limit.sliding) return table_->windows.acquire(key, limit.window, ctx.now, limit.cost);
  return table_->gcra.acquire(key, limit.policy, ctx.now, limit.cost, fraction_draw(key, ctx));
}

// A request refused by a limit takes nothing from the limits that let it through (as nginx's
// limit_req): limits [0, end) of `limits` give back what they took. A global limit's leased tokens
// are not given back (they are Redis's, and few).
template <LimitScope Scope>
void BasicRateLimitStage<Scope>::refund(const std::vector<ratelimit::CompiledRateLimit>& limits, std::size_t end,
                                        const RequestContext& ctx) noexcept {
  for (std::size_t j = 0; j < end && j < limits.size(); ++j) {
    const auto& limit = limits[j];
    if (limit.global) continue;
    const std::uint64_t client = key_of(limit, ctx);
    if (client == 0 || client == kRepeatedKeyHeader) continue;
    const std::uint64_t key = resilience::hash_combine(limit.id, client);
    if (limit.sliding) table_->windows.refund(key, limit.window, ctx.now, limit.cost);
    else table_->gcra.refund(key, limit.policy, ctx.now, limit.cost, fraction_draw(key, ctx));
  }
}

// The request is refused here: every limit that let it through, in this stage and (for a
// manifest's limits) the process-wide ones before it, gives back what it took.
template <LimitScope Scope>
void BasicRateLimitStage<Scope>::refund_all_before(const std::vector<ratelimit::CompiledRateLimit>& limits,
                                                   std::size_t refused_at, const RequestContext& ctx) noexcept {
  refund(limits, refused_at, ctx);
  if (Scope == LimitScope::manifest) refund(ctx.snapshot->rate_limits, ctx.snapshot->rate_limits.size(), ctx);
}

template <LimitScope Scope>
Verdict BasicRateLimitStage<Scope>::on_request(RequestContext& ctx) noexcept {
  const auto& limits = Scope == LimitScope::process ? ctx.snapshot->rate_limits : ctx.manifest->rate_limits;
  if (limits.empty() || table_ == nullptr) {
    if (Scope == LimitScope::manifest) append_legacy_headers(ctx);
    return Verdict::Continue;
  }
  bool refused = false;
  // Resumed after a Suspend: the limits before limit_next already took their share.
  for (std::size_t i = ctx.limit_next; i < limits.size(); ++i) {
    const auto& limit = limits[i];
    const std::uint64_t client = key_of(limit, ctx);
    if (client == 0 && limit.key == ratelimit::CompiledRateLimit::Key::header) continue;
    if (client == kRepeatedKeyHeader) {
      refund_all_before(limits, i, ctx);
      ctx.reply = Error::repeated_key_header;
      return Verdict::Reply;
    }
    const std::uint64_t key = resilience::hash_combine(limit.id, client);
    resilience::LimitDecision decision;
    if (limit.global) {
      const auto global = acquire_global(limit, key, ctx);
      if (!global) {
        ctx.limit_next = static_cast<std::uint8_t>(i);
        return Verdict::Suspend;
      }
      decision = *global;
      if (!decision.allowed && decision.retry_after == resilience::Duration{}) {
        // Fail closed: the limit could not be checked.
        refund_all_before(limits, i, ctx);
        ctx.retry_after_seconds = 1;
        ctx.reply = Error::rate_limit_unavailable;
        return Verdict::Reply;
      }
    } else {
      decision = acquire_local(limit, key, ctx);
      if (limit.shaping && decision.allowed && decision.delay.count() > 0)
        ctx.shape_until = std::max(ctx.shape_until, ctx.now + decision.delay);
    }
    if (counts_ != nullptr && limit.counter < counts_->size())
      ++((*counts_)[limit.counter].*(decision.allowed ? &RateLimitCounts::allowed : &RateLimitCounts::refused));
    if (!decision.allowed || ctx.limit_tightest < 0 || decision.remaining < ctx.limit_decision.remaining) {
      ctx.limit_tightest = static_cast<std::int16_t>(i);
      ctx.limit_decision = decision;
    }
    if (!decision.allowed) {
      refused = true;
      refund_all_before(limits, i, ctx);
      break;
    }
  }
  if (!refused && ctx.shape_until > ctx.now) {
    const auto total = ctx.snapshot->config.timeouts.request_total;
    if (total.count() > 0 && ctx.shape_until > ctx.started + total) {
      // Its turn would come after the request's time is up: refuse it now rather than hold it, and
      // without its place in the queue (or a client at the rate would never get through again).
      refused = true;
      refund_all_before(limits, limits.size(), ctx);
      ctx.limit_decision.allowed = false;
      ctx.limit_decision.retry_after = ctx.shape_until - ctx.now;
    } else {
      ctx.limit_next = static_cast<std::uint8_t>(limits.size());  // every limit is done: resume past them
      return Verdict::Suspend;  // the session holds the request until shape_until, then resumes here
    }
  }
  const auto tightest_index = ctx.limit_tightest;
  const auto tightest_decision = ctx.limit_decision;
  ctx.limit_next = 0;  // the next rate limit stage starts afresh
  ctx.limit_tightest = -1;
  if (tightest_index < 0) {
    if (Scope == LimitScope::manifest) append_legacy_headers(ctx);
    return Verdict::Continue;
  }
  const ratelimit::CompiledRateLimit* tightest = &limits[static_cast<std::size_t>(tightest_index)];
  const auto reset_seconds = ceil_seconds(tightest_decision.reset_after);
  if (ctx.legacy_limit == 0 || tightest_decision.remaining < ctx.legacy_remaining) {
    ctx.legacy_limit = tightest->quota;
    ctx.legacy_remaining = tightest_decision.remaining;
    ctx.legacy_reset_seconds = reset_seconds;
  }
  if (ctx.snapshot->ietf_rate_limit_headers) {
    // RateLimit-Policy: every limit that fits (whole items); RateLimit: the state of the one closest
    // to refusing.
    HeaderLine policy(ctx, "RateLimit-Policy");
    bool first = true;
    for (const auto& limit : limits) {
      const std::string_view separator = first ? "" : ", ";
      if (!policy.fits(separator.size() + limit.policy_item.size())) continue;
      policy.add(separator).add(limit.policy_item);
      first = false;
    }
    if (!first) policy.commit();
    HeaderLine(ctx, "RateLimit")
        .add("\"")
        .add(tightest->name)
        .add("\";r=")
        .add_number(tightest_decision.remaining)
        .add(";t=")
        .add_number(reset_seconds)
        .commit();
  }
  // The legacy trio names one limit for the whole request: written once, by the last stage to run.
  if (refused || Scope == LimitScope::manifest) append_legacy_headers(ctx);
  if (!refused) return Verdict::Continue;
  const auto wait = tightest_decision.retry_after == resilience::Duration::max()
                        ? std::uint64_t{tightest->window_seconds}
                        : ceil_seconds(tightest_decision.retry_after);
  ctx.retry_after_seconds = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, wait));
  ctx.reply = Error::rate_limited;
  return Verdict::Reply;
}

template class BasicRateLimitStage<LimitScope::process>;
template class BasicRateLimitStage<LimitScope::manifest>;

Verdict ManifestStage::on_request(RequestContext& ctx) noexcept {
  const auto route = manifest::split_route(ctx.request->target);
  ctx.project = route.project;
  ctx.module = route.module;
  ctx.environment = environment_of(ctx);
  ctx.manifest = nullptr;
  if (const auto* stored = ctx.snapshot->stored.get()) {
    if (!stored->known() && !ctx.index_waited && fetcher != nullptr) {
      // Just started: the index of stored keys is being read. "" is the index's own key.
      ctx.index_waited = ctx.repin_snapshot = true;
      fetcher->await(std::string(), ctx.lease_waiter);
      return Verdict::Suspend;
    }
    if (const auto* entry = stored->find(ctx.project, ctx.module, ctx.environment)) {
      const bool fresh = ctx.now < entry->expires_at;
      // A copy whose last fetch failed serves on without a wait (stale-if-error) while its refreshes
      // run in the background: a store that hangs would otherwise cost a fetch's whole timeout to a
      // request every time the copy's short reprieve ran out.
      if (entry->manifest >= 0 && (fresh || ctx.manifest_waited || entry->stale)) {
        ctx.manifest = &ctx.snapshot->manifests.manifests()[static_cast<std::size_t>(entry->manifest)];
        if (counts != nullptr) {
          // A copy whose fetch failed is stale however its expiry was moved on (it was a hit before,
          // and the stale counter stayed at 0 through an outage). After a wait the request was
          // counted as a miss already.
          if (!fresh || entry->stale) ++counts->stale_served;
          else if (!ctx.manifest_waited) ++counts->stored_hits;
        }
        if (fetcher != nullptr && ctx.now >= entry->refresh_at && (fresh || entry->stale) &&
            !entry->refresh_asked->exchange(true, std::memory_order_relaxed))
          fetcher->refresh(entry->key);
        return Verdict::Continue;
      }
      if (!fresh && !ctx.manifest_waited && fetcher != nullptr) {
        if (counts != nullptr) ++counts->stored_misses;
        ctx.manifest_waited = ctx.repin_snapshot = true;
        fetcher->await(entry->key, ctx.lease_waiter);
        return Verdict::Suspend;
      }
      // Known unavailable for now (or the fetch just failed): the embedded manifests serve.
      if (counts != nullptr) ++counts->embedded_fallbacks;
    }
  }
  ctx.manifest = ctx.snapshot->manifests.find(ctx.project, ctx.module, ctx.environment);
  if (ctx.manifest == nullptr) {
    ctx.reply = Error::no_manifest;
    return Verdict::Reply;
  }
  return Verdict::Continue;
}

Verdict LoadShedStage::on_request(RequestContext& ctx) noexcept {
  const auto& limits = ctx.snapshot->config.load_shedding;
  std::uint8_t level = monitor_->tick_level;
  if (limits.max_inflight_requests != 0)
    level = std::max(level, LoadMonitor::level_of(monitor_->inflight, limits.max_inflight_requests));
  const auto priority = ctx.manifest->priority;
  if (level == 0 || priority == manifest::Manifest::Priority::high ||
      (priority == manifest::Manifest::Priority::normal && level < 2))
    return Verdict::Continue;
  ++monitor_->shed;
  ctx.reply = Error::overloaded;
  ctx.retry_after_seconds = 1;
  return Verdict::Reply;
}

Verdict BreakerStage::on_request(RequestContext& ctx) noexcept {
  // No limit, no count: a shared atomic per request is a cross-core cache miss worth avoiding.
  if (clusters_ == nullptr || ctx.manifest->max_requests == 0) return Verdict::Continue;
  if (!clusters_->try_add_request(ctx.manifest->index, ctx.manifest->max_requests)) {
    ctx.reply = Error::overloaded;
    ctx.retry_after_seconds = 1;
    return Verdict::Reply;
  }
  ctx.holds_request_slot = true;
  return Verdict::Continue;
}

void BreakerStage::on_complete(RequestContext& ctx) noexcept {
  release_slots(ctx);
  report(ctx, ctx.outcome, ctx.status);
}

void BreakerStage::on_tunnel(RequestContext& ctx) noexcept {
  release_slots(ctx);
  report(ctx, Error::ok, 101);
}

void BreakerStage::release_slots(RequestContext& ctx) noexcept {
  if (clusters_ == nullptr || ctx.manifest == nullptr) return;
  if (ctx.holds_request_slot) clusters_->remove_request(ctx.manifest->index);
  if (ctx.holds_retry_slot) clusters_->remove_retry(ctx.manifest->index);
  ctx.holds_request_slot = ctx.holds_retry_slot = false;
}

void BreakerStage::report(RequestContext& ctx, Error outcome, unsigned status) noexcept {
  if (ctx.endpoint == nullptr || ctx.manifest == nullptr || ctx.attempt_reported) return;
  const auto latency = ctx.response_started == Clock::time_point{} ? resilience::Duration::zero()
                                                                    : ctx.response_started - ctx.upstream_started;
  health_->report(*ctx.manifest, ctx.endpoint_index, outcome, status, latency, ctx.now);
  ctx.attempt_reported = true;
}

namespace {

std::string_view cookie_value(const RequestContext& ctx, std::string_view name) noexcept {
  for (const http::Header& h : *ctx.request->headers) {
    if (h.kind != http::HeaderKind::other || !http::iequals(h.name, "cookie")) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      const auto semi = list.find(';');
      std::string_view pair = list.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=')
        return pair.substr(name.size() + 1);
      if (semi == std::string_view::npos) break;
      list.remove_prefix(semi + 1);
    }
  }
  return {};
}

// The hex form of an endpoint's identity, as the sticky cookie carries it.
std::array<char, 16> sticky_token(const manifest::EndpointSpec& e) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  std::array<char, 16> out{};
  std::uint64_t v = resilience::hash64(e.name);
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = kHex[v & 0xf];
  return out;
}

// One candidate from the manifest's balancing policy among those `usable` says yes to.
template <class Usable>
std::size_t pick_by_policy(RequestContext& ctx, UpstreamHealth& health, UpstreamHealth::ManifestState& state,
                           Usable&& usable) noexcept {
  const auto& m = *ctx.manifest;
  switch (m.balancing) {
    case manifest::Balancing::weighted: return state.weighted.pick(usable);
    case manifest::Balancing::least_connections:
      return state.least_outstanding.pick(usable, [&](std::size_t i) -> std::uint64_t {
        return health.load(m.endpoints[i].id).inflight;
      });
    case manifest::Balancing::latency_aware:
      return state.two_choices.pick(health.random(), usable, [&](std::size_t i) {
        const auto& load = health.load(m.endpoints[i].id);
        return resilience::p2c_cost(load.latency.value_ns(ctx.now), load.inflight);
      });
    case manifest::Balancing::consistent_hash: {
      std::string_view key;
      switch (m.hash_key) {
        case manifest::Manifest::HashKey::request_uri: key = ctx.request->target; break;
        case manifest::Manifest::HashKey::header: key = header_value(ctx, m.hash_key_name); break;
        case manifest::Manifest::HashKey::cookie: key = cookie_value(ctx, m.hash_key_name); break;
      }
      if (key.empty() || !state.ring) break;  // nothing to hash: plain rotation
      return state.ring->pick(resilience::hash64(key), usable);
    }
    case manifest::Balancing::sticky: {
      const auto token = cookie_value(ctx, m.sticky_cookie);
      if (token.size() == 16) {
        for (std::size_t i = 0; i < m.endpoints.size(); ++i) {
          const auto mine = sticky_token(m.endpoints[i]);
          if (token == std::string_view(mine.data(), mine.size())) {
            if (usable(i)) return i;
            break;  // its endpoint is down: move the client, the response re-pins it
          }
        }
      }
      break;
    }
    case manifest::Balancing::round_robin: break;
  }
  return state.round_robin.pick(usable);
}

}  // namespace

Verdict PickStage::on_request(RequestContext& ctx) noexcept {
  const auto& endpoints = ctx.manifest->endpoints;
  auto& state = health_->state(*ctx.manifest);
  const auto now = ctx.now;
  if (ctx.attempt == 0) state.budget.on_request(now);
  // Half-open breakers with no probe slot left, this pick: rare, so the set is cleared only once one
  // is met, and sized to the manifest (any number of endpoints).
  bool any_refused = false;
  auto refused = [&](std::size_t k) { return any_refused && ((refused_[k / 64] >> (k % 64)) & 1) != 0; };
  auto candidate = [&](std::size_t k, bool skip_ejected, bool ignore_breaker) {
    return !ctx.tried.contains(static_cast<std::uint32_t>(k)) && !refused(k) &&
           !(skip_ejected && (state.outliers.ejected(k, now) || health_->checked_down(endpoints[k].id))) &&
           (ignore_breaker || health_->breaker(endpoints[k].id).state(now) != resilience::CircuitBreaker::State::open);
  };
  // Failover: only the lowest priority level that has a candidate takes traffic.
  auto level_of = [&](bool skip_ejected, bool ignore_breaker) {
    std::uint32_t level = UINT32_MAX;
    for (std::size_t k = 0; k < endpoints.size(); ++k)
      if (endpoints[k].priority < level && candidate(k, skip_ejected, ignore_breaker)) level = endpoints[k].priority;
    return level;
  };
  const auto& policy = health_->policy(*ctx.manifest);
  std::size_t i = resilience::kNoEndpoint;
  // Pass 0: healthy endpoints. Pass 1 (outlier_detection.when_all_ejected: use_ejected): every
  // untried endpoint is ejected or failing its health check, so those verdicts are ignored (a
  // suspect endpoint beats none). Pass 2 (circuit_breaker.when_all_open: try_anyway): open
  // breakers are ignored too — the last resort, off by default.
  for (int pass = 0; pass < 3 && i == resilience::kNoEndpoint; ++pass) {
    if (pass == 1 && policy.fail_when_all_ejected) continue;
    if (pass == 2 && !policy.try_when_all_open) break;
    if (pass == 2) any_refused = false;  // half-open ones out of probe slots are fair game too
    const bool skip_ejected = pass == 0 || (pass == 2 && policy.fail_when_all_ejected);
    const bool ignore_breaker = pass == 2;
    for (std::size_t round = 0; round < endpoints.size() && i == resilience::kNoEndpoint; ++round) {
      const std::uint32_t level = ctx.manifest->has_priorities ? level_of(skip_ejected, ignore_breaker) : 0;
      const std::size_t k = pick_by_policy(ctx, *health_, state, [&](std::size_t j) {
        return endpoints[j].priority == level && candidate(j, skip_ejected, ignore_breaker);
      });
      if (k == resilience::kNoEndpoint) break;
      // Admission is asked of the chosen endpoint only: a half-open breaker counts its probes here.
      if (ignore_breaker || health_->breaker(endpoints[k].id).allow(now)) {
        i = k;
      } else {
        if (!any_refused) refused_.assign((endpoints.size() + 63) / 64, 0);
        any_refused = true;
        refused_[k / 64] |= std::uint64_t{1} << (k % 64);
      }
    }
  }
  if (i == resilience::kNoEndpoint) {
    // Retry-After: when the first open breaker will let a probe through.
    auto soonest = resilience::TimePoint::max();
    for (const auto& e : endpoints) {
      const auto at = health_->breaker(e.id).half_open_at();
      if (at != resilience::TimePoint{} && at < soonest) soonest = at;
    }
    const auto wait = soonest == resilience::TimePoint::max() ? std::chrono::seconds(1)
                                                              : std::chrono::ceil<std::chrono::seconds>(soonest - now);
    ctx.retry_after_seconds = static_cast<std::uint32_t>(std::max<std::int64_t>(1, wait.count()));
    ctx.reply = Error::no_healthy_upstream;
    return Verdict::Reply;
  }
  ctx.endpoint = &endpoints[i];
  ctx.endpoint_index = static_cast<std::uint32_t>(i);
  ctx.attempt_reported = false;
  if (ctx.manifest->balancing == manifest::Balancing::sticky) {
    const auto token = sticky_token(endpoints[i]);
    const std::string_view mine(token.data(), token.size());
    ctx.erase_sticky_cookie();  // a retry picked again: its endpoint's cookie replaces the last one
    if (cookie_value(ctx, ctx.manifest->sticky_cookie) != mine) {
      const auto at = ctx.response_headers_size;
      HeaderLine(ctx, "Set-Cookie").add(ctx.manifest->sticky_cookie).add("=").add(mine).add("; Path=/; HttpOnly").commit();
      ctx.sticky_cookie_at = at;
      ctx.sticky_cookie_size = static_cast<std::uint16_t>(ctx.response_headers_size - at);
    }
  }
  return Verdict::Continue;
}

}  // namespace frontdoor::pipeline
