// /health is liveness: a worker whose event loop stops running handlers (a handler that blocks, a
// busy loop) must fail it within AdminEndpoints::kStuckAfter, be named, and pass again once it runs.
// Real workers on real threads; the stall is a handler that blocks until the test releases it.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <thread>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/resilience/rate_limiter.hpp"
#include "frontdoor/server/admin_endpoints.hpp"
#include "frontdoor/server/worker.hpp"
#include "frontdoor/snapshot/snapshot.hpp"
#include "frontdoor/upstream/cluster_load.hpp"

namespace frontdoor::server {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr const char* kConfig = R"(listeners:
  - address: 127.0.0.1:0
manifests:
  - {project: shop, module: "*", endpoints: ["127.0.0.1:9001"]}
)";

// Runs `fn` on the control thread, as the admin listener does, and returns its answer.
template <typename Fn>
auto on_control(asio::io_context& control, Fn fn) {
  std::packaged_task<decltype(fn())()> task(std::move(fn));
  auto answer = task.get_future();
  asio::post(control, [&task] { task(); });
  return answer.get();
}

TEST(Health, AStalledWorkerFailsLivenessAndReadinessByNameAndPassesOnceItRunsAgain) {
  auto loaded = config::load_config_string(kConfig, "inline.yaml");
  ASSERT_TRUE(loaded.config);
  snapshot::EndpointRegistry registry;
  std::vector<config::ConfigError> errors;
  const auto snapshot = snapshot::build_snapshot(*loaded.config, registry, errors);
  ASSERT_TRUE(snapshot);

  std::atomic<std::uint32_t> connections{0};
  ClientConnectionCounts per_client;
  resilience::LocalLimitTables limiter(1024);
  upstream::ClusterLoad clusters(snapshot->manifests.manifests().size());
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < 2; ++i) workers.push_back(std::make_unique<Worker>(i, snapshot, connections, per_client, &limiter, &clusters));
  std::vector<Worker*> peers{workers[0].get(), workers[1].get()};
  for (auto& w : workers) w->set_peers(peers);

  asio::io_context control;
  asio::ip::tcp::acceptor acceptor(control, {asio::ip::make_address("127.0.0.1"), 0});
  AdminEndpoints admin(control, std::move(acceptor), workers, limiter, clusters, *loaded.config);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
  admin.start();
  std::thread control_thread([&] { control.run(); });

  auto health = [&] { return on_control(control, [&] { return admin.health(); }); };
  EXPECT_EQ(health().status, 200u);

  // Worker 1 blocks in a handler: its loop runs no heartbeat until released.
  std::promise<void> release;
  asio::post(workers[1]->io(), [stalled = release.get_future()]() mutable { stalled.wait(); });
  std::this_thread::sleep_for(AdminEndpoints::kStuckAfter + 2 * AdminEndpoints::kHeartbeatEvery);
  const auto stuck = health();
  EXPECT_EQ(stuck.status, 503u);
  EXPECT_NE(stuck.body.find("\"status\":\"stuck\""), std::string::npos) << stuck.body;
  EXPECT_NE(stuck.body.find("{\"worker\":1,"), std::string::npos) << stuck.body;
  EXPECT_EQ(stuck.body.find("{\"worker\":0,"), std::string::npos) << "worker 0 kept running: " << stuck.body;
  // Readiness too: the kernel still hands the stuck worker its share of new connections.
  const auto not_ready = on_control(control, [&] { return admin.ready(); });
  EXPECT_EQ(not_ready.status, 503u);
  EXPECT_NE(not_ready.body.find("\"status\":\"worker_stuck\",\"workers\":2,\"stuck_workers\":[{\"worker\":1,"),
            std::string::npos) << not_ready.body;

  // Released, it runs the heartbeats queued meanwhile: live again within a heartbeat or two
  // (polled, with a bound, so that a loaded machine does not fail the test).
  release.set_value();
  auto live = health();
  for (int i = 0; i < 30 && live.status != 200; ++i) {
    std::this_thread::sleep_for(100ms);
    live = health();
  }
  EXPECT_EQ(live.status, 200u) << live.body;
  const auto ready = on_control(control, [&] { return admin.ready(); });
  EXPECT_EQ(ready.status, 200u) << ready.body;

  // A control thread that stalls posts no heartbeats meanwhile: that made every worker look stuck.
  asio::post(control, [] { std::this_thread::sleep_for(AdminEndpoints::kStuckAfter + 1s); });
  const auto after_stall = health();
  EXPECT_EQ(after_stall.status, 200u) << after_stall.body;
  EXPECT_EQ(on_control(control, [&] { return admin.ready(); }).status, 200u);

  // Drained workers are finished, not stuck.
  for (auto& w : workers) w->begin_drain(std::chrono::steady_clock::now());
  for (auto& t : threads) t.join();
  EXPECT_EQ(health().status, 200u);
  on_control(control, [&] {
    admin.stop();
    return 0;
  });
  control_thread.join();
}

}  // namespace
}  // namespace frontdoor::server
