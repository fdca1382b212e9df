#pragma once
// HealthChecker: active HTTP health checks of the endpoints of the published snapshot, run on the
// control thread. Each endpoint is probed every `interval` with `GET <path>` on a fresh connection;
// after `unhealthy_threshold` failures in a row (connect error, timeout, unexpected status) it is
// reported down, after `healthy_threshold` successes up again. Changes are handed to `on_change` (the
// server fans them out to every worker). It follows every snapshot published (update): endpoints a
// reload or a stored manifest brings are probed too, and those no longer listed stop being probed.
// Control thread only.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "frontdoor/snapshot/snapshot.hpp"

namespace frontdoor::upstream {

class HealthChecker {
 public:
  using OnChange = std::function<void(manifest::EndpointId, bool healthy)>;

  HealthChecker(boost::asio::io_context& io, OnChange on_change);
  ~HealthChecker();
  // Probes what `snapshot` asks for from now on. An endpoint still listed keeps its probe and verdict
  // (new settings apply from its next probe); a new one starts healthy (passive checks cover the first
  // interval); one no longer listed stops, and a verdict of unhealthy is lifted with it.
  void update(const snapshot::Snapshot& snapshot);
  std::size_t size() const noexcept { return probes_.size(); }
  void stop();

 private:
  struct Probe;
  using ProbePtr = std::shared_ptr<Probe>;  // held by its pending handlers too: a retired one outlives them
  void schedule(const ProbePtr& p, std::chrono::milliseconds after);
  void run(const ProbePtr& p);
  void finish(const ProbePtr& p, bool ok);
  void retire(Probe& p);

  boost::asio::io_context& io_;
  OnChange on_change_;
  std::unordered_map<manifest::EndpointId, ProbePtr> probes_;
  bool stopped_ = false;
};

}  // namespace frontdoor::upstream
