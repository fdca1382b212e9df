#include "frontdoor/upstream/health_checker.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>
#include <unordered_set>

namespace frontdoor::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

struct HealthChecker::Probe {
  explicit Probe(asio::io_context& io) : socket(io), timer(io), deadline(io) {}
  manifest::EndpointId id = 0;
  std::string name;
  asio::ip::tcp::endpoint address;
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;     // next probe
  asio::steady_timer deadline;  // this probe's timeout
  std::string request;
  std::array<char, 512> response{};
  std::size_t received = 0;
  bool healthy = true;  // optimistic at start: passive checks cover the first interval
  bool done = false;
  std::uint32_t streak = 0;  // consecutive results against the current state
  config::HealthCheckSettings settings;
};

HealthChecker::HealthChecker(asio::io_context& io, const snapshot::Snapshot& snapshot, OnChange on_change)
    : io_(io), on_change_(std::move(on_change)) {
  // An endpoint listed by several manifests is probed once, as the first of them says.
  std::unordered_set<manifest::EndpointId> seen;
  for (const auto& m : snapshot.manifests.manifests()) {
    if (m.health_check.path.empty()) continue;
    for (const auto& e : m.endpoints) {
      if (!seen.insert(e.id).second) continue;
      auto p = std::make_unique<Probe>(io_);
      p->id = e.id;
      p->name = e.name;
      p->address = e.address;
      p->settings = m.health_check;
      p->request = "GET " + p->settings.path + " HTTP/1.1\r\nHost: " + e.authority +
                   "\r\nUser-Agent: frontdoor-health-check\r\nConnection: close\r\n\r\n";
      probes_.push_back(std::move(p));
    }
  }
}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  for (auto& p : probes_) schedule(*p, std::chrono::milliseconds(0));
}

void HealthChecker::stop() {
  stopped_ = true;
  for (auto& p : probes_) {
    error_code ignored;
    p->timer.cancel();
    p->deadline.cancel();
    p->socket.close(ignored);
  }
}

void HealthChecker::schedule(Probe& p, std::chrono::milliseconds after) {
  if (stopped_) return;
  p.timer.expires_after(after);
  p.timer.async_wait([this, &p](const error_code& ec) {
    if (!ec && !stopped_) run(p);
  });
}

void HealthChecker::run(Probe& p) {
  error_code ignored;
  p.socket.close(ignored);
  p.received = 0;
  p.done = false;
  p.deadline.expires_after(p.settings.timeout);
  p.deadline.async_wait([this, &p](const error_code& ec) {
    if (!ec && !p.done) finish(p, false);  // timed out
  });
  p.socket.async_connect(p.address, [this, &p](const error_code& ec) {
    if (p.done || stopped_) return;
    if (ec) return finish(p, false);
    asio::async_write(p.socket, asio::buffer(p.request), [this, &p](const error_code& wec, std::size_t) {
      if (p.done || stopped_) return;
      if (wec) return finish(p, false);
      // The status line is all we need: "HTTP/1.x NNN".
      asio::async_read(p.socket, asio::buffer(p.response), asio::transfer_at_least(12),
                       [this, &p](const error_code& rec, std::size_t n) {
                         if (p.done || stopped_) return;
                         if (n < 12 || (rec && rec != asio::error::eof)) return finish(p, false);
                         const std::string_view head(p.response.data(), n);
                         if (head.substr(0, 7) != "HTTP/1." || head[8] != ' ') return finish(p, false);
                         unsigned status = 0;
                         for (int i = 9; i < 12; ++i) status = status * 10 + static_cast<unsigned>(head[i] - '0');
                         finish(p, status >= p.settings.expected_status_min && status <= p.settings.expected_status_max);
                       });
    });
  });
}

void HealthChecker::finish(Probe& p, bool ok) {
  p.done = true;
  error_code ignored;
  p.deadline.cancel();
  p.socket.close(ignored);
  if (ok == p.healthy) {
    p.streak = 0;
  } else if (++p.streak >= (ok ? p.settings.healthy_threshold : p.settings.unhealthy_threshold)) {
    p.healthy = ok;
    p.streak = 0;
    spdlog::warn("health check: endpoint {} is {}", p.name, ok ? "healthy again" : "unhealthy");
    on_change_(p.id, ok);
  }
  schedule(p, std::chrono::duration_cast<std::chrono::milliseconds>(p.settings.interval));
}

}  // namespace frontdoor::upstream
