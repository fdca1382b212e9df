#include "frontdoor/server/certificate_watch.hpp"

#include <spdlog/spdlog.h>

#include <ctime>

namespace frontdoor::server {

bool tls_files_renewed(const ListenerInfo& info) noexcept {
  return info.tls && !(stamp_tls_files(info.tls_files) == info.tls_stamp);
}

CertificateWatch::CertificateWatch(boost::asio::io_context& control, const LiveListeners& live, MakeInfo make_info,
                                   Retarget retarget)
    : timer_(control), live_(live), make_info_(std::move(make_info)), retarget_(std::move(retarget)) {}

void CertificateWatch::watch(const std::vector<config::ListenerConfig>& listeners, std::chrono::milliseconds every) {
  listeners_ = &listeners;
  every_ = every;
  if (every.count() == 0) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(every);  // a wait already armed is replaced
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    check();
    watch(*listeners_, every_);
  });
}

void CertificateWatch::check() {
  if (listeners_ == nullptr) return;
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (const auto& lc : *listeners_) {
    const auto live = live_.find(lc.name);
    if (!lc.tls || live == live_.end() || !tls_files_renewed(*live->second)) continue;
    const auto stamp = stamp_tls_files(*lc.tls);
    if (auto said = refused_.find(lc.name); said != refused_.end() && said->second == stamp) continue;
    if (auto seen = same_content_.find(lc.name); seen != same_content_.end() && seen->second == stamp) continue;
    if (hash_tls_files(*lc.tls) == live->second->tls_content) {
      same_content_[lc.name] = stamp;  // the same bytes under a new stamp: nothing to read again
      continue;
    }
    same_content_.erase(lc.name);
    std::string error;
    auto info = make_info_(lc, error);
    if (!info) {
      spdlog::warn("listener {}: its certificate files changed, but {}; the previous certificate serves on", lc.name,
                   error);
      refused_[lc.name] = stamp;
      continue;
    }
    refused_.erase(lc.name);
    if (info->tls_content == live->second->tls_content) {
      // The same bytes after all: the hash above caught a file half rewritten in place (a sidecar
      // writing the same key again truncates it first). Another context would be kept for good.
      same_content_[lc.name] = stamp;
      continue;
    }
    // A renewal that is not valid now would make every client refuse the listener: while the
    // certificate serving is valid, it serves on. (When it is not, the renewal is no worse.)
    const std::string problem = certificate_validity_problem(info->tls_validity, now);
    if (!problem.empty() && certificate_validity_problem(live->second->tls_validity, now).empty()) {
      const bool expired = info->tls_validity.not_after != 0 && now > info->tls_validity.not_after;
      auto& said = expired ? refused_ : not_yet_valid_;
      if (auto was = said.find(lc.name); was == said.end() || !(was->second == stamp))
        spdlog::warn("listener {}: its renewed certificate {} {}; the previous certificate serves on{}", lc.name,
                     lc.tls->certificate_file, problem, expired ? "" : " until then");
      said[lc.name] = stamp;
      continue;
    }
    not_yet_valid_.erase(lc.name);
    retarget_(lc.name, std::move(info));
    spdlog::info("listener {}: certificate renewed, read again from {}", lc.name, lc.tls->certificate_file);
  }
}

}  // namespace frontdoor::server
