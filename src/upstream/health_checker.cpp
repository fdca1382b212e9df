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
  std::string authority;  // the Host header
  asio::ip::tcp::endpoint address;
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;     // next probe
  asio::steady_timer deadline;  // this probe's timeout
  std::string request;          // built when a probe starts: settings may change in between
  std::array<char, 512> response{};
  std::size_t received = 0;
  bool healthy = true;  // optimistic at start: passive checks cover the first interval
  bool done = false;
  bool retired = false;  // no longer listed: its pending handlers only let go of it
  std::uint32_t streak = 0;  // consecutive results against the current state
  config::HealthCheckSettings settings;
};

HealthChecker::HealthChecker(asio::io_context& io, OnChange on_change) : io_(io), on_change_(std::move(on_change)) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::update(const snapshot::Snapshot& snapshot) {
  if (stopped_) return;
  // An endpoint listed by several manifests is probed once, as the first of them says.
  std::unordered_set<manifest::EndpointId> listed;
  for (const auto& m : snapshot.manifests.manifests()) {
    if (m.health_check.path.empty()) continue;
    for (const auto& e : m.endpoints) {
      if (!listed.insert(e.id).second) continue;
      ProbePtr& p = probes_[e.id];
      if (p != nullptr && p->name != e.name) {  // the id went to another endpoint: a probe of its own
        retire(*p);
        p = nullptr;
      }
      const bool fresh = p == nullptr;
      if (fresh) p = std::make_shared<Probe>(io_);
      p->id = e.id;
      p->name = e.name;
      p->authority = e.authority;
      p->address = e.address;
      p->settings = m.health_check;
      if (fresh) schedule(p, std::chrono::milliseconds(0));
    }
  }
  for (auto it = probes_.begin(); it != probes_.end();) {
    if (listed.count(it->first) != 0) {
      ++it;
      continue;
    }
    retire(*it->second);
    it = probes_.erase(it);
  }
}

void HealthChecker::retire(Probe& p) {
  p.retired = true;
  error_code ignored;
  p.timer.cancel();
  p.deadline.cancel();
  p.socket.close(ignored);
  // No longer checked: an unhealthy verdict would otherwise stay with the endpoint for good.
  if (!p.healthy) on_change_(p.id, true);
}

void HealthChecker::stop() {
  stopped_ = true;
  for (auto& [id, p] : probes_) {
    error_code ignored;
    p->timer.cancel();
    p->deadline.cancel();
    p->socket.close(ignored);
  }
}

void HealthChecker::schedule(const ProbePtr& p, std::chrono::milliseconds after) {
  if (stopped_ || p->retired) return;
  p->timer.expires_after(after);
  p->timer.async_wait([this, p](const error_code& ec) {
    if (!ec && !stopped_ && !p->retired) run(p);
  });
}

void HealthChecker::run(const ProbePtr& p) {
  error_code ignored;
  p->socket.close(ignored);
  p->received = 0;
  p->done = false;
  p->request = "GET " + p->settings.path + " HTTP/1.1\r\nHost: " + p->authority +
               "\r\nUser-Agent: frontdoor-health-check\r\nConnection: close\r\n\r\n";
  const auto over = [this, p] { return p->done || p->retired || stopped_; };
  p->deadline.expires_after(p->settings.timeout);
  p->deadline.async_wait([this, p, over](const error_code& ec) {
    if (!ec && !over()) finish(p, false);  // timed out
  });
  p->socket.async_connect(p->address, [this, p, over](const error_code& ec) {
    if (over()) return;
    if (ec) return finish(p, false);
    asio::async_write(p->socket, asio::buffer(p->request), [this, p, over](const error_code& wec, std::size_t) {
      if (over()) return;
      if (wec) return finish(p, false);
      // The status line is all we need: "HTTP/1.x NNN".
      asio::async_read(p->socket, asio::buffer(p->response), asio::transfer_at_least(12),
                       [this, p, over](const error_code& rec, std::size_t n) {
                         if (over()) return;
                         if (n < 12 || (rec && rec != asio::error::eof)) return finish(p, false);
                         const std::string_view head(p->response.data(), n);
                         if (head.substr(0, 7) != "HTTP/1." || head[8] != ' ') return finish(p, false);
                         // Three digits, then the reason's space or the line's end: "0F0" is no 220.
                         const auto digit = [&](std::size_t i) { return head[i] >= '0' && head[i] <= '9'; };
                         if (!digit(9) || !digit(10) || !digit(11) || (n > 12 && head[12] != ' ' && head[12] != '\r'))
                           return finish(p, false);
                         unsigned status = 0;
                         for (int i = 9; i < 12; ++i) status = status * 10 + static_cast<unsigned>(head[i] - '0');
                         finish(p, status >= p->settings.expected_status_min && status <= p->settings.expected_status_max);
                       });
    });
  });
}

void HealthChecker::finish(const ProbePtr& p, bool ok) {
  p->done = true;
  error_code ignored;
  p->deadline.cancel();
  p->socket.close(ignored);
  if (ok == p->healthy) {
    p->streak = 0;
  } else if (++p->streak >= (ok ? p->settings.healthy_threshold : p->settings.unhealthy_threshold)) {
    p->healthy = ok;
    p->streak = 0;
    spdlog::warn("health check: endpoint {} is {}", p->name, ok ? "healthy again" : "unhealthy");
    on_change_(p->id, ok);
  }
  schedule(p, std::chrono::duration_cast<std::chrono::milliseconds>(p->settings.interval));
}

}  // namespace frontdoor::upstream
