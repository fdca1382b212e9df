#include "frontdoor/server/server.hpp"

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <pthread.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <functional>
#include <map>
#include <thread>

#include "frontdoor/core/address.hpp"
#include "frontdoor/core/network.hpp"
#include "frontdoor/snapshot/snapshot.hpp"
#include "frontdoor/server/admin_endpoints.hpp"
#include "frontdoor/server/certificate_watch.hpp"
#include "frontdoor/server/cpu_quota.hpp"
#include "frontdoor/server/reloader.hpp"
#include "frontdoor/server/tls_files.hpp"
#include "frontdoor/server/worker.hpp"
#include "frontdoor/upstream/health_checker.hpp"
#include <boost/asio/post.hpp>
#include "frontdoor/version.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr int kListenBacklog = 4096;
constexpr int kForcedExitCode = 2;  // a second SIGTERM/SIGINT during the drain

// Binds `count` sockets on the same address with SO_REUSEPORT (one per worker: the kernel spreads
// connections over them) and hands back their descriptors, listening, for the workers to adopt.
struct BoundListener {
  std::vector<int> fds;
  bool v6 = false;
  std::uint16_t port = 0;
};

Expected<BoundListener> bind_listener(const config::ListenerConfig& lc, std::size_t count) {
  using Result = Expected<BoundListener>;
  asio::io_context io;  // only to open and bind: the workers' loops adopt the descriptors
  asio::ip::tcp::resolver resolver(io);
  auto resolved = resolve_address(resolver, lc.address);
  if (!resolved) return Result::failure("address " + lc.address + ": " + resolved.error());
  asio::ip::tcp::endpoint endpoint = *resolved;
  error_code ec;
  if (endpoint.port() != 0) {
    // SO_REUSEPORT would let us share a port another process (an old instance, another daemon)
    // holds, silently splitting its traffic: probe with a plain bind first.
    asio::ip::tcp::acceptor probe(io);
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec) return Result::failure("cannot listen on " + lc.address + ": " + ec.message());
  }
  BoundListener bound;
  bound.v6 = endpoint.address().is_v6();
  const auto close_all = [&] {
    for (int fd : bound.fds) ::close(fd);
  };
  for (std::size_t i = 0; i < count; ++i) {
    asio::ip::tcp::acceptor acceptor(io);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(kListenBacklog, ec);
    if (ec) {
      close_all();
      return Result::failure("cannot listen on " + lc.address + ": " + ec.message());
    }
    // Port 0: the first bind picks the port, the others join it.
    endpoint.port(acceptor.local_endpoint().port());
    bound.fds.push_back(acceptor.release(ec));
  }
  bound.port = endpoint.port();
  return bound;
}

// What workers read of a listener; a reload makes a new one rather than change one in use.
std::unique_ptr<ListenerInfo> listener_info(const config::ListenerConfig& lc, std::string& error);

bool write_ports_file(const std::string& path, const std::vector<std::pair<std::string, std::uint16_t>>& ports) {
  // Written whole then renamed, so a reader never sees half a file.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& [name, port] : ports) out << name << ' ' << port << '\n';
    if (!out) return false;
  }
  error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

// The client connections the process may hold: as configured, or (0) half of the file descriptors
// it may open, less a reserve (the other half is for upstream connections), and no more than fit in
// its cgroup's memory limit at `per_connection` bytes each. The soft descriptor limit is raised to
// the hard one first, as nginx's worker_rlimit_nofile does.
std::uint32_t connection_limit(std::uint32_t configured, std::uint64_t per_connection) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max == RLIM_INFINITY ? std::max<rlim_t>(limit.rlim_cur, 1 << 20) : limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  constexpr rlim_t kReserve = 256;  // listeners, Redis, health checks, logs, the binary's own files
  const rlim_t fds = limit.rlim_cur == RLIM_INFINITY ? rlim_t{1} << 20 : limit.rlim_cur;
  const auto derived = static_cast<std::uint32_t>(
      std::clamp<rlim_t>(fds > 2 * kReserve ? (fds - kReserve) / 2 : 64, 64, rlim_t{1} << 24));
  const auto memory = cgroup_memory_limit();
  const std::uint64_t fit = memory ? connections_for_memory(*memory, per_connection) : UINT64_MAX;
  if (configured == 0) {
    if (fit < derived) {
      spdlog::info("server.max_connections: {} (what {} MiB of memory limit holds at {} KiB per connection "
                   "holding a request head; the {} file descriptors would allow {})",
                   fit, *memory >> 20, per_connection >> 10, static_cast<std::uint64_t>(fds), derived);
      return static_cast<std::uint32_t>(fit);
    }
    spdlog::info("server.max_connections: {} (half of the {} file descriptors this process may open, less {})",
                 derived, static_cast<std::uint64_t>(fds), static_cast<std::uint64_t>(kReserve));
    return derived;
  }
  if (configured > fit)
    spdlog::warn("server.max_connections {} is more than the memory limit ({} MiB) holds at {} KiB per connection "
                 "holding a request head ({}): a flood of such connections may get the process OOM-killed",
                 configured, *memory >> 20, per_connection >> 10, fit);
  if (configured > derived)
    spdlog::warn("server.max_connections {} is more than the file descriptor limit ({}) leaves for clients ({}): "
                 "accepts may fail for want of descriptors",
                 configured, static_cast<std::uint64_t>(fds), derived);
  else
    spdlog::info("server.max_connections: {}", configured);
  return configured;
}

std::unique_ptr<ListenerInfo> listener_info(const config::ListenerConfig& lc, std::string& error) {
  std::vector<Network> trusted;
  for (const auto& text : lc.trusted_proxies)
    if (auto network = Network::parse(text)) trusted.push_back(*network);  // validated already
  auto info = std::make_unique<ListenerInfo>(ListenerInfo{lc.name, lc.default_environment, lc.environments,
                                                          lc.proxy_protocol, NetworkSet(std::move(trusted)),
                                                          lc.tls.has_value(), nullptr, {}, {}, 0, {}});
  if (lc.tls) {
    info->tls_files = *lc.tls;
    info->tls_stamp = stamp_tls_files(*lc.tls);  // before the read: a change during it is seen next time
    info->tls_content = hash_tls_files(*lc.tls);
    auto context = make_tls_context(*lc.tls);
    if (!context) {
      error = "TLS: " + context.error();
      return nullptr;
    }
    info->tls_context = *context;
    info->tls_validity = certificate_validity(**context);
    // Served all the same (refusing to start would not make it valid); a renewal is checked apart.
    if (const auto problem = certificate_validity_problem(info->tls_validity, std::time(nullptr)); !problem.empty())
      spdlog::warn("listener {}: its certificate {} {}: clients will refuse it", lc.name, lc.tls->certificate_file,
                   problem);
  }
  return info;
}

}  // namespace

bool configure_logging(const std::string& level) {
  static bool initialised = false;
  if (!initialised) {
    auto logger = spdlog::stderr_color_mt("frontdoor");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    initialised = true;
  }
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  spdlog::set_level(parsed);
  return true;
}

int run_server(const config::Config& loaded, const RunOptions& options) {
  config::Config config = loaded;
  std::signal(SIGUSR1, SIG_IGN);  // until the metrics handler is installed: its default would kill us
  std::signal(SIGUSR2, SIG_IGN);  // likewise until the access log's reopen handler is
  std::signal(SIGHUP, SIG_IGN);   // likewise until the reload handler is (its default ends the process)
  if (!configure_logging(config.logging.level)) {
    spdlog::error("unknown logging.level \"{}\"", config.logging.level);
    return 1;
  }
  // A connection holding a request head holds its client buffer (snapshot: the head limit, at least
  // 16 KiB) and about 16 KiB more (the session, the kernel's socket buffers).
  config.server.max_connections = connection_limit(
      config.server.max_connections, std::max<std::uint64_t>(config.limits.max_header_bytes, 16 * 1024) + 16 * 1024);
  snapshot::EndpointRegistry registry;
  std::vector<config::ConfigError> errors;
  snapshot::AddressBook address_book;
  auto snapshot = snapshot::build_snapshot(config, registry, errors, nullptr, &address_book);
  if (!snapshot) {
    for (const auto& e : errors) spdlog::error("{}", e.to_string());
    return 1;
  }

  std::signal(SIGPIPE, SIG_IGN);
  if (const auto& env = config.redis.password_env; !env.empty() && std::getenv(env.c_str()) == nullptr)
    spdlog::warn("redis.password_env names {}, which is not set: connecting to Redis without AUTH", env);
  if (!snapshot->global_limit_key_secret) {
    bool any_global = std::any_of(snapshot->rate_limits.begin(), snapshot->rate_limits.end(),
                                  [](const auto& limit) { return limit.global; });
    for (const auto& m : snapshot->manifests.manifests())
      for (const auto& limit : m.rate_limits) any_global = any_global || limit.global;
    if (any_global)
      spdlog::warn("global rate limits hash their keys with a fixed key: set redis.key_secret_env to a secret "
                   "shared by the replicas, or a client could choose keys that collide with another's");
  }
  unsigned worker_count = config.server.workers;
  if (worker_count == 0) {
    const auto quota = cgroup_cpu_quota();
    worker_count = default_workers(quota, std::thread::hardware_concurrency());
    if (quota) spdlog::info("server.workers: {} (the cgroup's CPU quota is {:.2f} CPUs)", worker_count, *quota);
    else spdlog::info("server.workers: {} (one per core)", worker_count);
  }
  std::atomic<std::uint32_t> connections{0};
  ClientConnectionCounts per_client;  // server.max_connections_per_client
  // Shared by every worker: 2^16 slots (512 KiB), constant whatever the number of clients.
  resilience::LocalLimitTables limiter(std::size_t{1} << 16);  // 512 KiB each
  // Room for the manifest store's slots too (they follow the embedded manifests), so that their
  // max_requests / max_connections apply as the embedded ones' do; and for manifests a reload adds
  // (16 bytes each). Beyond that, a reload warns (ConfigReloader::set_cluster_capacity).
  constexpr std::size_t kManifestsAReloadMayAdd = 1024;
  const std::size_t store_slots = config.postgres.enabled() ? config.manifest_cache.max_entries + 1 : 0;
  upstream::ClusterLoad clusters(snapshot->manifests.manifests().size() + store_slots + kManifestsAReloadMayAdd);
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < worker_count; ++i)
    workers.push_back(std::make_unique<Worker>(i, snapshot, connections, per_client, &limiter, &clusters));
  std::vector<Worker*> peers;
  for (auto& worker : workers) peers.push_back(worker.get());
  for (auto& worker : workers) worker->set_peers(peers);

  // What can refuse the start is settled before any socket is bound (a client would reach a listener
  // of a process about to exit).
  std::string admin_token;
  if (const auto& env = config.admin.token_env; !config.admin.address.empty() && !env.empty()) {
    const char* value = std::getenv(env.c_str());
    if (value == nullptr || *value == '\0') {
      spdlog::error("admin.token_env names {}, which is not set: refusing to start with an open reload endpoint", env);
      return 1;
    }
    admin_token = value;
  }
  // One writer thread for the access log: workers hand it buffers and never block on it.
  std::unique_ptr<LogWriter> log_writer;
  if (config.logging.access_log.destination != "off") {
    std::string error;
    log_writer = LogWriter::start(config.logging.access_log, error);
    if (!log_writer) {
      spdlog::error("{}", error);
      return 1;
    }
  }
  for (auto& worker : workers) worker->open_access_log(log_writer.get());

  // Listener infos live as long as the process: a session keeps a pointer to its listener's.
  std::vector<std::unique_ptr<ListenerInfo>> infos;
  std::map<std::string, ListenerInfo*> live_listeners;  // by name
  std::vector<std::pair<std::string, std::uint16_t>> ports;
  for (const auto& lc : config.listeners) {
    std::string error;
    auto info = listener_info(lc, error);
    if (!info) {
      spdlog::error("listener {}: {}", lc.name, error);
      return 1;
    }
    auto bound = bind_listener(lc, workers.size());
    if (!bound) {
      spdlog::error("listener {}: {}", lc.name, bound.error());
      return 1;
    }
    for (std::size_t i = 0; i < workers.size(); ++i) workers[i]->adopt_listener((*bound).fds[i], (*bound).v6, info.get(), false);
    ports.emplace_back(lc.name, (*bound).port);
    spdlog::info("listener {} on {} (port {})", lc.name, lc.address, (*bound).port);
    live_listeners[lc.name] = info.get();
    infos.push_back(std::move(info));
  }

  // The control thread's loop: signals, the admin listener, health checks.
  asio::io_context control(1);
  // Caught from here on, before anything can see the process (the ports file, the listeners): a
  // signal during start-up is queued until its handler is armed below. A SIGTERM (a pod deleted as
  // it starts) drains rather than kills; a SIGHUP reloads rather than being lost.
  asio::signal_set signals(control, SIGINT, SIGTERM);
  asio::signal_set hangup(control, SIGHUP);
  asio::signal_set usr1(control, SIGUSR1);
  asio::signal_set usr2(control, SIGUSR2);
  std::unique_ptr<AdminEndpoints> admin;
  if (!config.admin.address.empty()) {
    asio::ip::tcp::resolver resolver(control);
    auto resolved = resolve_address(resolver, config.admin.address);
    asio::ip::tcp::acceptor acceptor(control);
    error_code ec = resolved ? error_code() : asio::error::host_not_found;
    if (!ec) acceptor.open((*resolved).protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(*resolved, ec);
    if (!ec) acceptor.listen(64, ec);
    if (ec) {
      spdlog::error("admin: cannot listen on {}: {}", config.admin.address,
                    resolved ? ec.message() : resolved.error());
      return 1;
    }
    admin = std::make_unique<AdminEndpoints>(control, std::move(acceptor), workers, limiter, clusters, config);
    ports.emplace_back("admin", admin->port());
    spdlog::info("admin listener on {} (port {}): /health /ready /metrics", config.admin.address, admin->port());
  }
  if (!options.ports_file.empty() && !write_ports_file(options.ports_file, ports)) {
    spdlog::error("cannot write ports file {}", options.ports_file);
    return 1;
  }

  // A listener on the same socket with new settings (or a renewed certificate): sessions keep the
  // info they started with, new ones get this.
  const auto retarget_listener = [&](const std::string& name, std::unique_ptr<ListenerInfo> info) {
    for (auto& w : workers) w->retarget_listener(live_listeners[name], info.get());
    live_listeners[name] = info.get();
    infos.push_back(std::move(info));
  };
  // Reloads: SIGHUP, POST /reload (the admin listener), `frontdoor reload`.
  // A reload's new listeners: bound first (all or none), then the workers adopt, retarget or close.
  const auto apply_listeners = [&](const std::vector<config::ListenerConfig>& next,
                                   const std::vector<config::ListenerConfig>& running) {
    std::map<std::string, const config::ListenerConfig*> before, after;
    for (const auto& l : running) before[l.name] = &l;
    for (const auto& l : next) after[l.name] = &l;
    struct Added {
      const config::ListenerConfig* config;
      std::unique_ptr<ListenerInfo> info;
      BoundListener bound;
    };
    std::vector<Added> added;
    std::vector<std::unique_ptr<ListenerInfo>> retargeted;
    std::vector<std::string> errors;
    for (const auto& [name, lc] : after) {
      const auto was = before.find(name);
      // The same settings: kept, unless its certificate was renewed under the same paths.
      if (was != before.end() && *was->second == *lc && !tls_files_renewed(*live_listeners[name])) continue;
      std::string error;
      auto info = listener_info(*lc, error);
      if (info && was != before.end() && was->second->address == lc->address) {
        retargeted.push_back(std::move(info));  // same socket, new settings
        continue;
      }
      auto bound = info ? bind_listener(*lc, workers.size()) : Expected<BoundListener>::failure(error);
      if (!bound) {
        errors.push_back("listener " + name + ": " + bound.error());
        for (auto& a : added)
          for (int fd : a.bound.fds) ::close(fd);
        return errors;
      }
      added.push_back({lc, std::move(info), *bound});
    }
    for (const auto& [name, lc] : before) {
      const auto now = after.find(name);
      if (now != after.end() && now->second->address == lc->address) continue;
      for (auto& w : workers) w->remove_listener(live_listeners[name]);  // its connections stay
      live_listeners.erase(name);
      std::erase_if(ports, [&name = name](const auto& p) { return p.first == name; });  // clang 14: no binding capture
      spdlog::info("reload: listener {} closed", name);
    }
    for (auto& info : retargeted) {
      spdlog::info("reload: listener {} takes its new settings", info->name);
      const std::string name = info->name;
      retarget_listener(name, std::move(info));
    }
    for (auto& a : added) {
      for (std::size_t i = 0; i < workers.size(); ++i)
        workers[i]->adopt_listener(a.bound.fds[i], a.bound.v6, a.info.get(), true);
      ports.emplace_back(a.config->name, a.bound.port);
      live_listeners[a.config->name] = a.info.get();
      spdlog::info("reload: listener {} on {} (port {})", a.config->name, a.config->address, a.bound.port);
      infos.push_back(std::move(a.info));
    }
    if (!options.ports_file.empty() && !write_ports_file(options.ports_file, ports))
      spdlog::warn("reload: cannot rewrite the ports file {}", options.ports_file);
    return errors;
  };
  // The manifest store: PostgreSQL, Redis, L1 (docs/manifests.md). Without it (or without its
  // connection string) the embedded manifests serve alone.
  // Every snapshot goes out through here (control thread): to the workers, and to the active health
  // checks, which follow the endpoints a reload or a stored manifest brings (created below).
  std::unique_ptr<upstream::HealthChecker> checker;
  const auto publish = [&workers, &checker](std::shared_ptr<const snapshot::Snapshot> next) {
    for (auto& w : workers) w->install_snapshot(next);
    if (checker) checker->update(*next);
  };
  std::unique_ptr<store::ManifestStore> manifest_store;
  if (config.postgres.enabled()) {
    std::string error;
    manifest_store = store::ManifestStore::create(control, config, registry, publish, error);
    if (!manifest_store)
      spdlog::error("manifest store off: {}; the embedded manifests serve alone", error);
  }
  ConfigReloader reloader(options.config_path, config, registry, workers, apply_listeners);
  reloader.set_written_max_connections(loaded.server.max_connections);
  reloader.set_address_book(std::move(address_book));
  reloader.set_cluster_capacity(clusters.size(), store_slots);
  if (manifest_store) {
    for (auto& w : workers) w->set_manifest_store(manifest_store.get(), &control);
    reloader.set_installer([&](std::shared_ptr<const snapshot::Snapshot> next) { manifest_store->rebase(std::move(next)); });
    manifest_store->start(snapshot);
    if (admin) admin->set_manifest_store(manifest_store.get());
  } else {
    reloader.set_installer(publish);
  }
  if (admin) {
    admin->set_listeners(live_listeners);
    admin->enable_reload(reloader, std::move(admin_token));
  }
  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](const error_code& ec, int) {
      if (ec) return;
      spdlog::info("SIGHUP: reloading {}", options.config_path.empty() ? "(no file)" : options.config_path);
      reloader.reload();
      await_hangup();
    });
  };
  await_hangup();

  // Endpoints named by host name, resolved again on an interval (a headless Service's pods come and
  // go) and after each reload, on a thread of their own; a changed answer compiles the running
  // config again.
  store::BlockingPool resolver_thread("fd-resolver", {}, 1);
  asio::steady_timer resolve_timer(control);
  std::function<void()> schedule_resolve;
  const std::function<void()> resolve_now = [&] {
    if (manifest_store) manifest_store->refresh_addresses();
    resolver_thread.submit([&, names = snapshot::host_names(reloader.running().manifests)](auto*, const auto&) {
      std::vector<std::string> failed;
      auto book = snapshot::resolve_names(names, failed);
      asio::post(control, [&, book = std::move(book), failed = std::move(failed)] {
        for (const auto& f : failed) spdlog::warn("endpoint {}: its last addresses stay", f);
        reloader.refresh_addresses(book);
        schedule_resolve();
      });
    });
  };
  schedule_resolve = [&] {
    const auto every = reloader.running().upstream_pool.resolve_interval;
    if (every.count() == 0) return;
    resolve_timer.expires_after(every);  // a round already scheduled is replaced
    resolve_timer.async_wait([&](const error_code& ec) {
      if (!ec) resolve_now();
    });
  };
  schedule_resolve();

  // Certificates renewed under the same paths are read again (certificate_watch.hpp).
  CertificateWatch certificates(control, live_listeners, listener_info, retarget_listener);
  const auto watch_certificates = [&] {
    certificates.watch(reloader.running().listeners, reloader.running().server.certificate_check_interval);
  };
  watch_certificates();
  reloader.set_after_reload([&] {
    resolve_now();
    watch_certificates();  // its interval may have changed
  });

  asio::steady_timer drain_delay(control);
  const auto begin_drain = [&] {
    const auto deadline = std::chrono::steady_clock::now() + config.server.drain_timeout;
    if (checker) checker->stop();
    for (auto& worker : workers) worker->begin_drain(deadline);
  };
  signals.async_wait([&](const error_code& ec, int signo) {
    if (ec) return;
    if (admin) admin->set_draining();  // /ready: 503 from now on
    if (config.server.drain_delay.count() > 0) {
      // Still serving while the endpoint leaves the Service; then the drain proper.
      spdlog::info("signal {}: /ready is 503; serving for {} ms more, then draining (deadline {} ms); a second "
                   "SIGTERM or SIGINT exits at once",
                   signo, config.server.drain_delay.count(), config.server.drain_timeout.count());
      drain_delay.expires_after(config.server.drain_delay);
      drain_delay.async_wait([&](const error_code& wait_ec) {
        if (!wait_ec) begin_drain();
      });
    } else {
      spdlog::info("signal {}: draining (deadline {} ms); a second SIGTERM or SIGINT exits at once", signo,
                   config.server.drain_timeout.count());
      begin_drain();
    }
    // An operator who asks twice does not want to wait for the drain (like a second Ctrl-C).
    signals.async_wait([](const error_code& again_ec, int again) {
      if (again_ec) return;
      spdlog::warn("signal {} during the drain: exiting now, requests in flight are cut", again);
      spdlog::shutdown();
      std::_Exit(kForcedExitCode);
    });
  });

  // SIGUSR1: every worker's counters, summed, as one JSON line in the log (what /metrics will serve).
  std::function<void()> await_usr1 = [&] {
    usr1.async_wait([&](const error_code& ec, int) {
      if (ec) return;
      spdlog::info("metrics {}", collect_metrics(workers, limiter, clusters).to_json());
      await_usr1();
    });
  };
  await_usr1();

  // SIGUSR2: reopen the access log file (after logrotate moved it away).
  std::function<void()> await_usr2 = [&] {
    usr2.async_wait([&](const error_code& ec, int) {
      if (ec) return;
      if (log_writer) {
        log_writer->reopen();  // it says whether the file could be opened again
      }
      await_usr2();
    });
  };
  await_usr2();

  std::vector<std::thread> threads;
  for (auto& worker : workers) {
    threads.emplace_back([w = worker.get()] { w->run(); });
    // Named for `top -H`, `perf` and a stuck worker's stack: fd-worker-0, fd-worker-1, ...
    pthread_setname_np(threads.back().native_handle(), ("fd-worker-" + std::to_string(threads.size() - 1)).c_str());
  }
  spdlog::info("frontdoor {} started: {} worker(s), {} manifest(s)", kVersion, worker_count,
               snapshot->manifests.manifests().size());

  // Active health checks run on the control thread; verdicts go to every worker.
  {
    checker = std::make_unique<upstream::HealthChecker>(
        control, [&workers](manifest::EndpointId id, bool healthy) {
          for (auto& worker : workers) {
            Worker* w = worker.get();
            asio::post(w->io(), [w, id, healthy] { w->health().set_checked_healthy(id, healthy); });
          }
        });
    checker->update(*snapshot);
  }

  if (admin) admin->start();
  std::thread control_thread([&] { control.run(); });
  for (auto& t : threads) t.join();
  if (admin) admin->stop();
  control.stop();
  control_thread.join();
  resolver_thread.stop();
  if (manifest_store) manifest_store->stop();
  checker.reset();
  workers.clear();  // their access logs hand the writer their last lines
  if (log_writer) log_writer->stop(std::chrono::milliseconds(2000));
  spdlog::info("drained, exiting");
  return 0;
}

}  // namespace frontdoor::server
