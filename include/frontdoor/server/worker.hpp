#pragma once
// Worker: one thread, one io_context, its own SO_REUSEPORT acceptors, sessions, upstream pools,
// stats and access log. Nothing here is shared with other workers on the hot path; the control
// thread talks to a worker only by posting to its io_context.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "frontdoor/core/accepted_socket.hpp"
#include "frontdoor/core/coarse_clock.hpp"
#include "frontdoor/core/network.hpp"
#include "frontdoor/snapshot/snapshot.hpp"
#include "frontdoor/core/waiter.hpp"
#include "frontdoor/pipeline/stages.hpp"
#include "frontdoor/proxy/exchange.hpp"
#include "frontdoor/server/access_log.hpp"
#include "frontdoor/server/client_connection_counts.hpp"
#include "frontdoor/server/idle_connection.hpp"
#include "frontdoor/server/metrics.hpp"
#include "frontdoor/server/request_id.hpp"
#include "frontdoor/server/tls_files.hpp"
#include "frontdoor/stats/counters.hpp"
#include "frontdoor/store/manifest_store.hpp"
#include "frontdoor/upstream/connection.hpp"

namespace frontdoor::server {

class Session;

struct ListenerInfo {
  std::string name;
  std::string default_environment;
  std::vector<std::string> environments;  // the environment header may choose these ("*": any)
  bool proxy_protocol = false;  // connections start with a PROXY protocol header
  NetworkSet trusted_proxies;   // peers whose X-Forwarded-For says who the client is
  bool tls = false;
  std::shared_ptr<boost::asio::ssl::context> tls_context;  // set iff tls; shared by the workers
  config::TlsConfig tls_files;  // what tls_context was read from...
  TlsFilesStamp tls_stamp;      // ...and those files as they were then...
  std::uint64_t tls_content = 0;  // ...and what they held (a touch, or a sidecar rewriting the same
                                  // bytes, is no renewal: each re-read kept a context for good)
  CertificateValidity tls_validity;  // the certificate's notBefore and notAfter
};

class Worker final : public proxy::ExchangeHost, public pipeline::ManifestFetcher {
 public:
  // `limiter` is the process-wide rate limit table (outlives the worker).
  // `clusters`: the process-wide cluster limit counters (outlive the worker).
  // `per_client`: the process-wide open connections per client (outlives the worker).
  Worker(unsigned index, std::shared_ptr<const snapshot::Snapshot> snapshot, std::atomic<std::uint32_t>& connections,
         ClientConnectionCounts& per_client, resilience::LocalLimitTables* limiter, upstream::ClusterLoad* clusters);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  boost::asio::io_context& io() noexcept override { return io_; }
  unsigned index() const noexcept { return index_; }

  // Takes a bound, listening socket (its descriptor) for `info`: before run() (`live` false),
  // directly; while running (a reload), posted — it starts accepting on the worker's thread.
  void adopt_listener(int fd, bool v6, const ListenerInfo* info, bool live);
  // A reload (posted): new connections to the listener `from` get `to` (same socket, new settings).
  void retarget_listener(const ListenerInfo* from, const ListenerInfo* to);
  // A reload (posted): the listener stops accepting; its connections stay.
  void remove_listener(const ListenerInfo* info);
  // Setup, before run(): the process's access log writer (null: off).
  void open_access_log(LogWriter* writer);

  // Thread body: returns once drained.
  void run();
  // Liveness, for the admin listener's /health (any thread): a heartbeat stamped `at_ms` is posted to
  // the event loop, which records it when it runs it; a finished worker (drained) is not stuck.
  void post_heartbeat(std::int64_t at_ms);
  std::int64_t last_heartbeat_ms() const noexcept { return heartbeat_ms_.load(std::memory_order_relaxed); }
  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }

  // From any thread (posted): stop accepting, let in-flight requests finish, close idle keep-alive
  // connections; force-close what is left at `deadline`.
  void begin_drain(std::chrono::steady_clock::time_point deadline);
  // From any thread (posted): requests that start from now on use `snapshot`.
  void install_snapshot(std::shared_ptr<const snapshot::Snapshot> snapshot);
  // The manifest store (on the control thread) that fetches what this worker's requests wait for.
  // Before run().
  void set_manifest_store(store::ManifestStore* store, boost::asio::io_context* control) noexcept {
    store_ = store;
    control_ = control;
  }
  // pipeline::ManifestFetcher: one request to the store per key however many requests wait here.
  void await(const std::string& key, Waiter& waiter) override;
  void refresh(const std::string& key) override;
  const pipeline::ManifestCounts& manifest_counts() const noexcept { return manifest_counts_; }

  // --- for sessions and their exchanges (worker thread) ---
  const std::shared_ptr<const snapshot::Snapshot>& snapshot() const noexcept { return snapshot_; }
  pipeline::RequestPipeline& pipeline() noexcept { return pipeline_; }
  pipeline::UpstreamHealth& health() noexcept override { return health_; }
  pipeline::PickStage& picker() noexcept override { return pipeline_.stage<pipeline::PickStage>(); }
  upstream::ClusterLoad* clusters() noexcept override { return pipeline_.stage<pipeline::BreakerStage>().clusters(); }
  pipeline::LoadMonitor& load() noexcept { return load_; }
  stats::WorkerCounters& counters() noexcept override { return counters_; }
  stats::RequestTally& requests() noexcept { return requests_; }
  AccessLog& access_log() noexcept { return access_log_; }
  RequestIdGenerator& request_ids() noexcept { return request_ids_; }
  upstream::UpstreamPool& pool(manifest::EndpointId id) override;
  bool draining() const noexcept override { return draining_; }
  // Scratch space for serialising heads: valid until the next call that may serialise.
  char* scratch() noexcept override { return scratch_.get(); }
  std::size_t scratch_size() const noexcept override { return scratch_size_; }
  // Client buffers are recycled: connection churn does not hit malloc.
  std::unique_ptr<char[]> take_client_buffer();
  void return_client_buffer(std::unique_ptr<char[]> buffer);
  void session_closed(Session* session) noexcept;
  // Keep-alive connections waiting for their next request, oldest first: at max_connections the
  // oldest is closed to admit a new connection.
  void mark_idle(Session* session) noexcept;
  void mark_busy(Session* session) noexcept;
  // A plain keep-alive connection between requests, parked without its session (IdleConnection);
  // the session then calls session_parked() and is recycled, the connection staying open.
  void park(boost::asio::ip::tcp::socket socket, core::DrainAwareReader reader, const ListenerInfo& listener,
            const boost::asio::ip::address& peer, std::string_view peer_text, ClientConnectionCounts::Slot client_slot);
  // server.max_connections_per_client: a slot for one more connection of `client` on `listener`, or
  // an empty one, uncapped: the cap is off, or the peer is a trusted proxy. False (counted, said in
  // the log): the client has its share open already, and the connection is to be closed.
  bool take_client_slot(const ListenerInfo& listener, const boost::asio::ip::address& client,
                        ClientConnectionCounts::Slot& slot);
  void session_parked(Session* session) noexcept;
  pipeline::Clock::time_point now() const noexcept override { return pipeline::Clock::now(); }
  pipeline::Clock::time_point coarse_now() const noexcept override { return core::coarse_steady_now(); }
  const ratelimit::GlobalRateLimiter* global_limiter() const noexcept { return global_limiter_.get(); }
  // Setup, before run(): every worker of the process (this one included), told when a breaker here opens.
  void set_peers(std::vector<Worker*> peers);
  // Adds this worker's counters (worker thread: post it).
  void add_metrics(Metrics& into) const;
  // Requests waiting for a connection under their manifest's max_connections (by Manifest::index).
  Waiter& connection_queue(std::uint32_t manifest) override;
  // Wakes the first of them (from the event loop, not inside the caller).
  void wake_connection_queue(std::uint32_t manifest) override;
  // Frees a max_connections slot of the manifest (by Manifest::index) held by one of this worker's
  // idle pooled connections: false if it has none.
  bool close_idle_counted(std::uint32_t manifest_index) override;
  // Asks one other worker (in turn) to do the same; a waiting request finds the slot on a later try.
  void ask_peer_to_free_slot(std::uint32_t manifest_index) override;

 private:
  static constexpr std::size_t kMaxFreeSessions = 256;  // sessions and client buffers kept for reuse

  struct Listener {
    boost::asio::ip::tcp::acceptor acceptor;
    const ListenerInfo* info;
    core::AcceptedSocket socket;  // the next connection accepted
    boost::asio::ip::tcp::endpoint peer;
    boost::asio::steady_timer retry;
    std::uint64_t accept_errors = 0;  // said in the log at most once a minute (it was 20 lines a second)
    std::chrono::steady_clock::time_point accept_error_logged{};
  };

  std::unique_ptr<Listener> make_listener(int fd, bool v6, const ListenerInfo* info);
  void accept(Listener& listener);
  void on_accept(Listener& listener, const boost::system::error_code& ec);
  void tick();
  Session* new_session();
  void on_parked_read(IdleConnection* connection, const boost::system::error_code& ec, std::size_t n);
  // `settle`: the connection leaves the count of open ones (not when a new one takes its slot).
  void close_parked(IdleConnection* connection, bool settle) noexcept;
  void unlink_parked(IdleConnection* connection) noexcept;
  void recycle_parked(IdleConnection* connection) noexcept;
  void expire_sessions(pipeline::Clock::time_point now);
  void schedule_tick();
  void check_drained();
  void manifest_ready(const std::string& key);
  void forget_reassigned_endpoints();

  unsigned index_;
  boost::asio::io_context io_;
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  std::atomic<std::uint32_t>& connections_;
  ClientConnectionCounts& per_client_;
  std::chrono::steady_clock::time_point per_client_refusal_said_{};  // said at most once per 10 s
  std::uint64_t per_client_refusals_unsaid_ = 0;
  pipeline::UpstreamHealth health_;  // before pipeline_: its stages point at it
  std::vector<pipeline::RateLimitCounts> rate_limit_counts_;  // by ratelimit::CompiledRateLimit::counter
  // Global rate limits, with this worker's Redis connection; null when no limit is global.
  std::unique_ptr<ratelimit::GlobalRateLimiter> global_limiter_;
  pipeline::LoadMonitor load_;
  pipeline::ManifestCounts manifest_counts_;
  pipeline::RequestPipeline pipeline_;
  store::ManifestStore* store_ = nullptr;
  boost::asio::io_context* control_ = nullptr;
  std::unordered_map<std::string, Waiter> manifest_waits_;  // sentinels by stored key; nodes stay put
  stats::WorkerCounters counters_;
  stats::RequestTally requests_;
  AccessLog access_log_;
  RequestIdGenerator request_ids_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<upstream::UpstreamPool>> pools_;  // by EndpointId
  std::vector<std::uint32_t> endpoint_incarnations_;  // of snapshot_ (Snapshot::endpoint_incarnations)
  // Pools of reassigned ids that still had connections out: each comes back here and is closed.
  std::vector<std::unique_ptr<upstream::UpstreamPool>> retired_pools_;
  std::vector<std::unique_ptr<Waiter>> connection_queues_;  // sentinels; pointers stay put
  std::vector<Worker*> peers_;
  std::size_t next_peer_ = 0;
  std::unique_ptr<char[]> scratch_;
  std::size_t scratch_size_ = 0;
  std::vector<std::unique_ptr<char[]>> free_client_buffers_;
  std::uint32_t client_buffer_bytes_ = 0;
  std::vector<std::unique_ptr<Session>> free_sessions_;
  Session* sessions_ = nullptr;  // intrusive list of live sessions
  Session* idle_oldest_ = nullptr;  // intrusive list of idle keep-alive sessions (mark_idle)
  std::uint64_t idle_order_ = 0;    // stamps idle sessions and parked connections: oldest first across both
  Session* idle_newest_ = nullptr;
  IdleConnection* parked_oldest_ = nullptr;  // parked connections, by idle_since
  IdleConnection* parked_newest_ = nullptr;
  std::size_t parked_count_ = 0;
  std::vector<std::unique_ptr<IdleConnection>> free_parked_;
  std::size_t session_count_ = 0;
  boost::asio::steady_timer ticker_;
  pipeline::Clock::time_point tick_due_{};
  bool draining_ = false;
  std::atomic<std::int64_t> heartbeat_ms_{0};
  std::atomic<bool> finished_{false};
  std::chrono::steady_clock::time_point drain_deadline_{};
  friend class Session;
};

}  // namespace frontdoor::server
