// GlobalRateLimiter against a real redis-server (started per test on a Unix socket).
#include "frontdoor/ratelimit/global_limiter.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <functional>

#include "support/redis_process.hpp"

namespace frontdoor::ratelimit {
namespace {

using namespace std::chrono_literals;

struct Waiting {
  Waiter waiter;
  int woken = 0;
  Waiting() {
    waiter.owner = this;
    waiter.wake = [](Waiter& w) { ++static_cast<Waiting*>(w.owner)->woken; };
  }
};

class GlobalLimiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // as the daemon does: hiredis writes to a socket Redis may have closed
    ASSERT_TRUE(redis_.ok()) << "redis-server did not start (deploy/dev/install-deps.sh test)";
  }

  std::unique_ptr<GlobalRateLimiter> make(std::string address) {
    io::RedisOptions options;
    options.address = std::move(address);
    options.command_timeout = 500ms;
    auto limiter = std::make_unique<GlobalRateLimiter>(io_, options, "unit:", 64);
    limiter->start();
    return limiter;
  }
  std::unique_ptr<GlobalRateLimiter> connected() {
    auto limiter = make(redis_.address());
    EXPECT_TRUE(run_until([&] { return limiter->redis_connected(); }));
    return limiter;
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(5ms);
    }
    return done();
  }
  // One request: waits for the fetch when the limiter says so, then asks again (as a session does).
  GlobalDecision take(GlobalRateLimiter& limiter, std::uint64_t key, const GlobalLimitParams& params,
                      std::uint32_t cost = 1) {
    Waiting w;
    auto d = limiter.acquire(key, params, cost, resilience::Clock::now(), w.waiter);
    for (int round = 0; d.outcome == GlobalOutcome::wait && round < 5; ++round) {
      EXPECT_TRUE(run_until([&] { return w.woken > 0; }));
      w.woken = 0;
      d = limiter.acquire(key, params, cost, resilience::Clock::now(), w.waiter);
    }
    return d;
  }

  test::RedisProcess redis_;
  boost::asio::io_context io_;
};

// 100/s, burst 100, leases of 10.
constexpr GlobalLimitParams kBatched{10'000, 1'000'000, 10};
// 1/s, burst 3, one token per fetch.
constexpr GlobalLimitParams kSmall{1'000'000, 3'000'000, 1};

TEST_F(GlobalLimiterTest, LeasesABatchAndSpendsItWithoutRedis) {
  auto limiter = connected();
  auto first = take(*limiter, 42, kBatched);
  ASSERT_EQ(first.outcome, GlobalOutcome::allowed);
  EXPECT_EQ(limiter->counters().fetches, 1u);
  EXPECT_EQ(limiter->counters().waits, 1u);
  // The next five come from the lease alone; the fifth leaves 4 < 10/2 and asks for the next batch early.
  for (int i = 0; i < 5; ++i) {
    Waiting w;
    const auto d = limiter->acquire(42, kBatched, 1, resilience::Clock::now(), w.waiter);
    EXPECT_EQ(d.outcome, GlobalOutcome::allowed) << i;
    EXPECT_FALSE(w.waiter.waiting());
  }
  EXPECT_EQ(limiter->counters().fetches, 2u);
  EXPECT_EQ(limiter->counters().waits, 1u);
  // The early fetch lands: 20 tokens leased in all, so Redis has about 80 left (plus what refilled at
  // 100/s meanwhile); the 14 held here count as remaining too.
  io_.restart();
  io_.run_for(100ms);
  Waiting w;
  const auto d = limiter->acquire(42, kBatched, 1, resilience::Clock::now(), w.waiter);
  ASSERT_EQ(d.outcome, GlobalOutcome::allowed);
  EXPECT_EQ(limiter->counters().fetches, 2u);
  EXPECT_GE(d.decision.remaining, 80u + 13u);
  EXPECT_LE(d.decision.remaining, 100u);
}

TEST_F(GlobalLimiterTest, RefusesLocallyOnceRedisHasNoneLeft) {
  auto limiter = connected();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(take(*limiter, 7, kSmall).outcome, GlobalOutcome::allowed) << i;
  const auto refused = take(*limiter, 7, kSmall);
  ASSERT_EQ(refused.outcome, GlobalOutcome::refused);
  EXPECT_GT(refused.decision.retry_after, 900ms);
  EXPECT_LE(refused.decision.retry_after, 1000ms);
  const auto fetches = limiter->counters().fetches;
  Waiting w;
  const auto again = limiter->acquire(7, kSmall, 1, resilience::Clock::now(), w.waiter);
  EXPECT_EQ(again.outcome, GlobalOutcome::refused);
  EXPECT_EQ(limiter->counters().fetches, fetches);  // no round trip while Redis said none
  EXPECT_EQ(limiter->counters().refused_locally, 2u);  // the first refusal was decided after a fetch
  // Other keys are untouched.
  EXPECT_EQ(take(*limiter, 8, kSmall).outcome, GlobalOutcome::allowed);
}

// 64 lease slots: a flood of 400 fresh keys (each holding its lease for a second) must not send new
// keys to the fallback policy while Redis is healthy, nor free a key held at its limit.
TEST_F(GlobalLimiterTest, AFloodOfFreshKeysEvictsLeasesInsteadOfFallingBack) {
  auto limiter = connected();
  constexpr GlobalLimitParams kSlow{10'000'000, 30'000'000, 1};  // 0.1/s, burst 3: no refill during the flood
  for (int i = 0; i < 3; ++i) ASSERT_EQ(take(*limiter, 7, kSlow).outcome, GlobalOutcome::allowed) << i;
  ASSERT_EQ(take(*limiter, 7, kSlow).outcome, GlobalOutcome::refused);
  for (std::uint64_t key = 1000; key < 1400; ++key)
    ASSERT_EQ(take(*limiter, key, kSmall).outcome, GlobalOutcome::allowed) << key;
  EXPECT_EQ(limiter->counters().table_full, 0u);
  EXPECT_EQ(limiter->counters().unavailable, 0u);
  EXPECT_GT(limiter->counters().evicted, 0u);
  // The key at its limit is still refused: Redis holds its count, whatever the table forgot.
  EXPECT_EQ(take(*limiter, 7, kSlow).outcome, GlobalOutcome::refused);
}

TEST_F(GlobalLimiterTest, TwoLimitersShareOneLimit) {
  auto a = connected();
  auto b = connected();
  int allowed = 0;
  for (int i = 0; i < 4; ++i) {
    allowed += take(*a, 9, kSmall).outcome == GlobalOutcome::allowed;
    allowed += take(*b, 9, kSmall).outcome == GlobalOutcome::allowed;
  }
  EXPECT_EQ(allowed, 3);  // the burst, once, across both
}

TEST_F(GlobalLimiterTest, UnavailableWithoutRedis) {
  auto limiter = make("unix:/nonexistent/redis.sock");
  io_.restart();
  io_.run_for(50ms);
  Waiting w;
  EXPECT_EQ(limiter->acquire(1, kSmall, 1, resilience::Clock::now(), w.waiter).outcome, GlobalOutcome::unavailable);
  EXPECT_FALSE(w.waiter.waiting());
  EXPECT_GE(limiter->redis_counters().connect_failures, 1u);
}

TEST_F(GlobalLimiterTest, ReloadsItsScriptWhenRedisForgotIt) {
  auto limiter = connected();
  EXPECT_EQ(take(*limiter, 3, kSmall).outcome, GlobalOutcome::allowed);
  EXPECT_NE(redis_.command("SCRIPT FLUSH").find("OK"), std::string::npos);
  EXPECT_EQ(take(*limiter, 3, kSmall).outcome, GlobalOutcome::allowed);
  EXPECT_EQ(limiter->counters().fetch_failures, 0u);
}

TEST_F(GlobalLimiterTest, RedisGoingAwayWakesWaitersAndFallsBack) {
  auto limiter = connected();
  Waiting w;
  ASSERT_EQ(limiter->acquire(5, kSmall, 1, resilience::Clock::now(), w.waiter).outcome, GlobalOutcome::wait);
  redis_.stop();
  ASSERT_TRUE(run_until([&] { return w.woken > 0; }));
  EXPECT_EQ(limiter->acquire(5, kSmall, 1, resilience::Clock::now(), w.waiter).outcome,
            GlobalOutcome::unavailable);
}

TEST_F(GlobalLimiterTest, AWaiterThatLeftIsNotWoken) {
  auto limiter = connected();
  Waiting leaving, staying;
  ASSERT_EQ(limiter->acquire(11, kSmall, 1, resilience::Clock::now(), leaving.waiter).outcome,
            GlobalOutcome::wait);
  ASSERT_EQ(limiter->acquire(11, kSmall, 1, resilience::Clock::now(), staying.waiter).outcome,
            GlobalOutcome::wait);
  leaving.waiter.unlink();  // its session closed
  ASSERT_TRUE(run_until([&] { return staying.woken > 0; }));
  EXPECT_EQ(leaving.woken, 0);
}

}  // namespace
}  // namespace frontdoor::ratelimit
