#pragma once
// ConfigReloader: a new configuration while the daemon runs (SIGHUP, POST /reload, `frontdoor
// reload`). The file is loaded and validated with every error reported (file:line), compiled into a
// snapshot, then posted to every worker: requests that started keep the snapshot they pinned, new
// ones get the new; connections stay open; per-endpoint state (breakers, pools, health) carries
// over for the endpoints that stay (stable endpoint ids). A bad file changes nothing.
// Settings that cannot change live keep their running values, and the result names them. The file
// must be valid with those values too: one that is not (a global rate limit with the redis section
// it needs, when the process runs without Redis) is refused, naming the kept setting.
// Host names the running config already resolved keep their addresses here: no DNS lookup on the
// control thread (where /health is answered), and a DNS outage cannot refuse a reload. They are
// resolved again off it right after (the after-reload hook); a new name is resolved at once, and
// one that does not resolve refuses the reload.
// Control thread only.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/config/config.hpp"
#include "frontdoor/snapshot/snapshot.hpp"

namespace frontdoor::server {

class Worker;

struct ReloadResult {
  bool ok = false;
  std::uint64_t generation = 0;             // of the configuration serving after this reload
  std::vector<std::string> errors;          // why it was refused (file:line:col: what is wrong)
  std::vector<std::string> restart_needed;  // settings that changed but keep their running values
  std::string file;                         // the file read (absolute): the one the daemon was started with
  std::string json() const;
};

class ConfigReloader {
 public:
  // Applies a new list of listeners (from the running one): binds what is new or moved, retargets
  // what only changed settings, closes what went — or changes nothing and returns why.
  using ApplyListeners = std::function<std::vector<std::string>(const std::vector<config::ListenerConfig>& next,
                                                                const std::vector<config::ListenerConfig>& running)>;

  ConfigReloader(std::string path, config::Config running, snapshot::EndpointRegistry& registry,
                 const std::vector<std::unique_ptr<Worker>>& workers, ApplyListeners apply_listeners)
      : path_(absolute_path(std::move(path))), running_(std::move(running)), registry_(registry), workers_(workers),
        apply_listeners_(std::move(apply_listeners)) {}

  // server.max_connections as the start file wrote it (`running` holds what 0 resolved to): a file
  // that writes the same keeps the running value without a word; any other value needs a restart.
  void set_written_max_connections(std::uint32_t written) noexcept { written_max_connections_ = written; }

  // With a manifest store, a reloaded snapshot goes to it (it adds what it holds and publishes).
  void set_installer(std::function<void(std::shared_ptr<const snapshot::Snapshot>)> install) {
    install_ = std::move(install);
  }

  ReloadResult reload();
  // Called after each reload that was installed (the server resolves the host names again).
  void set_after_reload(std::function<void()> hook) { after_reload_ = std::move(hook); }

  // How many manifests the process-wide cluster limits (upstream::ClusterLoad) were sized for at
  // start, and how many of those slots the manifest store's follow the embedded ones with: a reload
  // with more embedded manifests than fit is installed, and warns that the extra ones go unlimited.
  void set_cluster_capacity(std::size_t capacity, std::size_t store_slots) noexcept {
    cluster_capacity_ = capacity;
    store_slots_ = store_slots;
  }

  // Host names re-resolved (the control thread's timer): when what any of them resolves to
  // changed, the running config is compiled again with `fresh` (names missing from it keep their
  // addresses) and installed. True when it was.
  bool refresh_addresses(const snapshot::AddressBook& fresh);
  void set_address_book(snapshot::AddressBook book) { book_ = std::move(book); }
  const config::Config& running() const noexcept { return running_; }
  std::uint64_t generation() const noexcept { return generation_; }
  std::uint64_t succeeded() const noexcept { return succeeded_; }
  std::uint64_t failed() const noexcept { return failed_; }
  // The last reloads, newest last (for the status page): when, and what came of it.
  struct Entry {
    std::chrono::system_clock::time_point at;
    ReloadResult result;
  };
  const std::deque<Entry>& history() const noexcept { return history_; }

 private:
  ReloadResult attempt();

  // Absolute (the reply names it, and `frontdoor reload` runs from another directory); empty:
  // started by `frontdoor proxy`, nothing to reload from.
  std::string path_;
  static std::string absolute_path(std::string path);
  config::Config running_;
  std::uint32_t written_max_connections_ = 0;
  snapshot::EndpointRegistry& registry_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  ApplyListeners apply_listeners_;
  std::function<void(std::shared_ptr<const snapshot::Snapshot>)> install_;
  snapshot::AddressBook book_;  // what the host names of the running config resolved to
  std::function<void()> after_reload_;
  std::size_t cluster_capacity_ = 0;  // 0: not told (no check)
  std::size_t store_slots_ = 0;
  std::uint64_t generation_ = 1;
  std::uint64_t succeeded_ = 0;
  std::uint64_t failed_ = 0;
  std::deque<Entry> history_;  // at most 10
};

}  // namespace frontdoor::server
