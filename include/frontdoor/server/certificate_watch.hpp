#pragma once
// CertificateWatch: reads a TLS listener's certificate again when its files change under the same
// paths (cert-manager renews a certificate by rewriting the Secret; the kubelet swaps the mounted
// files), checking every server.certificate_check_interval on the control thread.
//
// A renewal is taken only when it can be read and is valid now. One that cannot be read (half
// written, a key for another certificate) or has expired is said once, and the previous certificate
// serves on until the files change again; one not valid yet is said once and taken when it becomes
// valid. A touch, or a sidecar writing the same bytes, is no renewal (nothing is read again).
// Control thread only.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/config/config.hpp"
#include "frontdoor/server/tls_files.hpp"
#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

// The files a TLS listener's context was read from are not those on disk now (a renewal).
bool tls_files_renewed(const ListenerInfo& info) noexcept;

class CertificateWatch {
 public:
  using LiveListeners = std::map<std::string, ListenerInfo*>;  // by name
  using MakeInfo = std::function<std::unique_ptr<ListenerInfo>(const config::ListenerConfig&, std::string& error)>;
  using Retarget = std::function<void(const std::string& name, std::unique_ptr<ListenerInfo>)>;

  CertificateWatch(boost::asio::io_context& control, const LiveListeners& live, MakeInfo make_info, Retarget retarget);

  // (Re)arms the check of `listeners` every `every` (0: no checks); a check already armed is replaced.
  // `listeners` must stay valid until the next call (the running configuration's).
  void watch(const std::vector<config::ListenerConfig>& listeners, std::chrono::milliseconds every);
  void stop() noexcept { timer_.cancel(); }

  // One round of checks, now (what the timer runs).
  void check();

 private:
  boost::asio::steady_timer timer_;
  const LiveListeners& live_;
  MakeInfo make_info_;
  Retarget retarget_;
  const std::vector<config::ListenerConfig>* listeners_ = nullptr;
  std::chrono::milliseconds every_{0};
  std::map<std::string, TlsFilesStamp> refused_;       // by listener: said, not taken until the files change
  std::map<std::string, TlsFilesStamp> not_yet_valid_;  // by listener: said, taken once valid
  std::map<std::string, TlsFilesStamp> same_content_;   // by listener: touched, not changed
};

}  // namespace frontdoor::server
