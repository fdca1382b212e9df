#pragma once
// HealthChecker: active HTTP health checks of every endpoint of a snapshot, run on the control
// thread. Each endpoint is probed every `interval` with `GET <path>` on a fresh connection; after
// `unhealthy_threshold` failures in a row (connect error, timeout, unexpected status) it is reported
// down, after `healthy_threshold` successes up again. Changes are handed to `on_change` (the server
// fans them out to every worker). Control thread only.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/snapshot/snapshot.hpp"

namespace frontdoor::upstream {

class HealthChecker {
 public:
  using OnChange = std::function<void(manifest::EndpointId, bool healthy)>;

  HealthChecker(boost::asio::io_context& io, const snapshot::Snapshot& snapshot, OnChange on_change);
  ~HealthChecker();
  void start();
  bool empty() const noexcept { return probes_.empty(); }
  void stop();

 private:
  struct Probe;
  void schedule(Probe& p, std::chrono::milliseconds after);
  void run(Probe& p);
  void finish(Probe& p, bool ok);

  boost::asio::io_context& io_;
  OnChange on_change_;
  std::vector<std::unique_ptr<Probe>> probes_;
  bool stopped_ = false;
};

}  // namespace frontdoor::upstream
