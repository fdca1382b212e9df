#include "frontdoor/server/worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <cstdlib>
#include <spdlog/spdlog.h>

#include "frontdoor/core/accepted_socket.hpp"
#include "frontdoor/server/session.hpp"
#include "frontdoor/store/store_settings.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto kTick = std::chrono::milliseconds(100);

// Whenever Redis is configured, not only when the start config has a global limit: a global limit
// may arrive later (a stored manifest, a reload), and must not act as a local one then. The worker's
// Redis connection is also what /ready reports for `redis`.
std::unique_ptr<ratelimit::GlobalRateLimiter> make_global_limiter(asio::io_context& io, const snapshot::Snapshot& snapshot) {
  const auto& redis = snapshot.config.redis;
  if (!redis.enabled()) return nullptr;
  return std::make_unique<ratelimit::GlobalRateLimiter>(io, store::redis_options(redis), redis.key_prefix);
}
}  // namespace

Worker::Worker(unsigned index, std::shared_ptr<const snapshot::Snapshot> snapshot, std::atomic<std::uint32_t>& connections,
               ClientConnectionCounts& per_client, resilience::LocalLimitTables* limiter, upstream::ClusterLoad* clusters)
    : index_(index),
      // One thread runs it and starts every socket operation on it (other threads only post):
      // Asio skips cross-thread hand-offs and the per-socket lock around each operation.
      io_(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      snapshot_(std::move(snapshot)),
      connections_(connections),
      per_client_(per_client),
      rate_limit_counts_(snapshot_->rate_limit_labels.size()),
      global_limiter_(make_global_limiter(io_, *snapshot_)),
      pipeline_(pipeline::RateLimitStage{limiter, global_limiter_.get(), &rate_limit_counts_}, pipeline::ManifestStage{this, &manifest_counts_},
                pipeline::ManifestRateLimitStage{limiter, global_limiter_.get(), &rate_limit_counts_}, pipeline::LoadShedStage{load_},
                pipeline::BreakerStage{health_, clusters},
                pipeline::PickStage{health_}),
      ticker_(io_) {
  // Room for the largest head we accept plus everything the proxy adds to it.
  scratch_size_ = 2 * static_cast<std::size_t>(snapshot_->config.limits.max_header_bytes) + 8192;
  scratch_.reset(new char[scratch_size_]);
  client_buffer_bytes_ = snapshot_->client_buffer_bytes;
  health_.set_rotation(index_);
  heartbeat_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                          pipeline::Clock::now().time_since_epoch()).count(),
                      std::memory_order_relaxed);
  health_.install(*snapshot_);
  endpoint_incarnations_ = snapshot_->endpoint_incarnations;
}

Worker::~Worker() {
  // The loop has stopped: no handler will run again, so sessions are freed directly.
  while (sessions_ != nullptr) {
    Session* next = sessions_->next_;
    delete sessions_;
    sessions_ = next;
  }
  while (parked_oldest_ != nullptr) {
    IdleConnection* next = parked_oldest_->newer;
    delete parked_oldest_;
    parked_oldest_ = next;
  }
  pools_.clear();
}

void Worker::open_access_log(LogWriter* writer) {
  access_log_.open(snapshot_->config.logging.access_log.format, writer, &counters_);
}

void Worker::post_heartbeat(std::int64_t at_ms) {
  if (finished()) return;  // its loop has ended: nobody would run it
  asio::post(io_, [this, at_ms] { heartbeat_ms_.store(at_ms, std::memory_order_relaxed); });
}

void Worker::run() {
  heartbeat_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                          pipeline::Clock::now().time_since_epoch()).count(),
                      std::memory_order_relaxed);
  if (global_limiter_) global_limiter_->start();
  for (auto& listener : listeners_) accept(*listener);
  schedule_tick();
  for (;;) {
    try {
      io_.run();
      break;
    } catch (const std::exception& e) {
      // A bug escaped a handler: keep the worker alive, the affected connection is lost.
      spdlog::error("worker {}: unexpected exception: {}", index_, e.what());
    }
  }
  access_log_.flush();
  finished_.store(true, std::memory_order_release);
}

void Worker::accept(Listener& listener) {
  listener.acceptor.async_accept(listener.socket, listener.peer,
                                 [this, &listener](const error_code& ec) { on_accept(listener, ec); });
}

void Worker::on_accept(Listener& listener, const error_code& ec) {
  if (draining_ || ec == asio::error::operation_aborted) {
    // Accepted just as the drain began (the handler was already queued): refused, never left open.
    error_code ignored;
    listener.socket.close(ignored);
    return;
  }
  if (ec) {
    // Out of descriptors or similar: back off instead of spinning on the error.
    ++listener.accept_errors;
    const auto now = std::chrono::steady_clock::now();
    if (now - listener.accept_error_logged >= std::chrono::minutes(1)) {
      listener.accept_error_logged = now;
      spdlog::warn("worker {}: accept on {}: {} ({} so far; said at most once a minute)", index_, listener.info->name,
                   ec.message(), listener.accept_errors);
    }
    listener.retry.expires_after(std::chrono::milliseconds(50));
    listener.retry.async_wait([this, &listener](const error_code& wait_ec) {
      if (!wait_ec && !draining_) accept(listener);
    });
    return;
  }
  ++counters_[stats::Counter::connections_accepted];
  // The client's own cap first: a client over it must not make another's idle connection close.
  // Behind PROXY protocol the client is known only from the header (Session::on_proxy_header).
  ClientConnectionCounts::Slot client_slot;
  if (!listener.info->proxy_protocol && !take_client_slot(*listener.info, listener.peer.address(), client_slot)) {
    error_code ignored;
    listener.socket.close(ignored);
    return accept(listener);
  }
  bool admit = connections_.fetch_add(1, std::memory_order_relaxed) < snapshot_->config.server.max_connections;
  if (!admit && (parked_oldest_ != nullptr || idle_oldest_ != nullptr)) {
    // Full: the longest-idle connection makes room (as nginx does), so that idle clients cannot lock
    // new ones out: parked or not, one between requests or one that never sent its first (oldest
    // across both lists, or a few silent connects would evict every keep-alive client first). This
    // one is counted already (the fetch_add above); the one closed leaves the count — at once when
    // parked, when its session is freed otherwise.
    ++counters_[stats::Counter::connections_reclaimed];
    const bool parked_is_older =
        parked_oldest_ != nullptr && (idle_oldest_ == nullptr || parked_oldest_->idle_order < idle_oldest_->idle_order_);
    if (parked_is_older) close_parked(parked_oldest_, true);
    else idle_oldest_->force_close();
    admit = true;
  }
  if (!admit) {
    connections_.fetch_sub(1, std::memory_order_relaxed);
    ++counters_[stats::Counter::connections_rejected];
    error_code ignored;
    listener.socket.close(ignored);
  } else {
    // Non-blocking by accept4, TCP_NODELAY from the listener: no system call here.
    new_session()->start(core::adopt_accepted(std::move(listener.socket)), listener.peer, *listener.info,
                         std::move(client_slot));
    listener.socket = core::AcceptedSocket(io_);
  }
  accept(listener);
}

bool Worker::take_client_slot(const ListenerInfo& listener, const asio::ip::address& client,
                              ClientConnectionCounts::Slot& slot) {
  const std::uint32_t cap = snapshot_->config.server.max_connections_per_client;
  if (cap == 0 || listener.trusted_proxies.contains(client)) return true;
  slot = per_client_.try_take(client, cap);
  if (slot) return true;
  ++counters_[stats::Counter::connections_refused_per_client];
  ++per_client_refusals_unsaid_;
  const auto now = std::chrono::steady_clock::now();
  if (now - per_client_refusal_said_ >= std::chrono::seconds(10)) {
    per_client_refusal_said_ = now;
    spdlog::warn("worker {}: client {} has server.max_connections_per_client ({}) connections open: a new one is "
                 "closed ({} refused on this worker since this was last said; said at most once per 10 s)",
                 index_, ClientConnectionCounts::describe(client), cap, per_client_refusals_unsaid_);
    per_client_refusals_unsaid_ = 0;
  }
  return false;
}

Session* Worker::new_session() {
  std::unique_ptr<Session> session;
  if (!free_sessions_.empty()) {
    session = std::move(free_sessions_.back());
    free_sessions_.pop_back();
  } else {
    session = std::make_unique<Session>(*this);
  }
  Session* s = session.release();
  s->next_ = sessions_;
  if (sessions_ != nullptr) sessions_->prev_ = s;
  sessions_ = s;
  ++session_count_;
  return s;
}

void Worker::session_closed(Session* session) noexcept {
  if (session->prev_ != nullptr) session->prev_->next_ = session->next_;
  else sessions_ = session->next_;
  if (session->next_ != nullptr) session->next_->prev_ = session->prev_;
  session->prev_ = session->next_ = nullptr;
  --session_count_;
  connections_.fetch_sub(1, std::memory_order_relaxed);
  session->client_slot_.reset();  // close_now gave it back already; any other ending, here
  std::unique_ptr<Session> owned(session);
  if (free_sessions_.size() < kMaxFreeSessions && !draining_) free_sessions_.push_back(std::move(owned));
  if (draining_) check_drained();
}

std::unique_ptr<char[]> Worker::take_client_buffer() {
  if (!free_client_buffers_.empty()) {
    auto buffer = std::move(free_client_buffers_.back());
    free_client_buffers_.pop_back();
    return buffer;
  }
  return std::unique_ptr<char[]>(new char[client_buffer_bytes_]);
}

void Worker::return_client_buffer(std::unique_ptr<char[]> buffer) {
  if (buffer && free_client_buffers_.size() < kMaxFreeSessions) free_client_buffers_.push_back(std::move(buffer));
}

void Worker::set_peers(std::vector<Worker*> peers) {
  peers_ = std::move(peers);
  health_.on_breaker_opened([this](manifest::EndpointId id) {
    for (Worker* peer : peers_) {
      if (peer == this) continue;
      asio::post(peer->io_, [peer, id] { peer->health_.open_breaker_from_peer(id, pipeline::Clock::now()); });
    }
  });
  health_.on_ejected([this](std::uint32_t manifest, std::uint64_t identity, std::size_t endpoint) {
    for (Worker* peer : peers_) {
      if (peer == this) continue;
      asio::post(peer->io_, [peer, manifest, identity, endpoint] {
        peer->health_.eject_from_peer(manifest, identity, endpoint, pipeline::Clock::now());
      });
    }
  });
}

void Worker::add_metrics(Metrics& m) const {
  const snapshot::Snapshot& snapshot = *snapshot_;
  ++m.workers;
  m.stats += counters_;
  m.requests += requests_;
  m.active_requests += load_.inflight;
  m.open_connections = connections_.load(std::memory_order_relaxed);
  if (m.routes.size() < snapshot.route_names.size()) m.routes = snapshot.route_names;
  m.shed += load_.shed;
  m.manifest_lookups.stored_hits += manifest_counts_.stored_hits;
  m.manifest_lookups.stored_misses += manifest_counts_.stored_misses;
  m.manifest_lookups.stale_served += manifest_counts_.stale_served;
  m.manifest_lookups.embedded_fallbacks += manifest_counts_.embedded_fallbacks;
  if (m.rate_limits.size() < snapshot.rate_limit_labels.size()) {
    m.rate_limits.resize(snapshot.rate_limit_labels.size());
    for (std::size_t i = 0; i < snapshot.rate_limit_labels.size(); ++i)
      std::tie(m.rate_limits[i].limit, m.rate_limits[i].manifest) = snapshot.rate_limit_labels[i];
  }
  for (std::size_t i = 0; i < rate_limit_counts_.size() && i < m.rate_limits.size(); ++i) {
    m.rate_limits[i].allowed += rate_limit_counts_[i].allowed;
    m.rate_limits[i].refused += rate_limit_counts_[i].refused;
  }
  if (m.endpoints.size() < snapshot.endpoint_names.size()) {
    m.endpoints.resize(snapshot.endpoint_names.size());
    for (std::size_t i = 0; i < snapshot.endpoint_names.size(); ++i) m.endpoints[i].endpoint = snapshot.endpoint_names[i];
  }
  const auto now = pipeline::Clock::now();
  const auto& breakers = health_.breakers();
  for (std::size_t id = 0; id < breakers.size() && id < m.endpoints.size(); ++id) {
    if (!breakers[id]) continue;
    auto& e = m.endpoints[id];
    const auto& c = breakers[id]->counters();
    e.breaker_opened += c.opened;
    e.breaker_closed += c.closed;
    e.breaker_rejected += c.rejected;
    // state() may move open -> half-open; a const view is enough to tell open from not.
    e.breakers_open += breakers[id]->half_open_at() > now ? 1 : 0;
  }
  const auto& loads = health_.loads();
  for (std::size_t id = 0; id < loads.size() && id < m.endpoints.size(); ++id) m.endpoints[id].in_flight += loads[id].inflight;
  const auto& manifests = snapshot.manifests.manifests();
  if (m.manifests.size() < manifests.size()) {
    m.manifests.resize(manifests.size());
    for (std::size_t i = 0; i < manifests.size(); ++i)
      m.manifests[i].manifest = manifests[i].project + "/" + manifests[i].module + "/" + manifests[i].environment;
  }
  const auto& states = health_.manifest_states();
  for (std::size_t i = 0; i < states.size() && i < m.manifests.size(); ++i) {
    if (!states[i]) continue;
    m.manifests[i].ejections += states[i]->outliers.counters().ejections;
    m.manifests[i].retries += states[i]->budget.counters().retries;
    m.manifests[i].retries_exhausted += states[i]->budget.counters().exhausted;
  }
  if (global_limiter_) {
    m.global_limiter += global_limiter_->counters();
    m.redis += global_limiter_->redis_counters();
    m.redis_connected += global_limiter_->redis_connected() ? 1 : 0;
  }
}

bool Worker::close_idle_counted(std::uint32_t index) {
  const auto& manifests = snapshot_->manifests.manifests();
  if (index >= manifests.size()) return false;
  for (const auto& e : manifests[index].endpoints)
    if (e.id < pools_.size() && pools_[e.id] && pools_[e.id]->close_idle_counted_for(index)) return true;
  return false;
}

void Worker::ask_peer_to_free_slot(std::uint32_t index) {
  if (peers_.size() < 2) return;
  Worker* peer = peers_[next_peer_++ % peers_.size()];
  if (peer == this) peer = peers_[next_peer_++ % peers_.size()];
  asio::post(peer->io_, [peer, index] { peer->close_idle_counted(index); });
}

Waiter& Worker::connection_queue(std::uint32_t manifest) {
  if (manifest >= connection_queues_.size()) connection_queues_.resize(manifest + 1);
  auto& queue = connection_queues_[manifest];
  if (!queue) queue = std::make_unique<Waiter>();
  return *queue;
}

void Worker::wake_connection_queue(std::uint32_t manifest) {
  if (manifest >= connection_queues_.size() || !connection_queues_[manifest] ||
      !connection_queues_[manifest]->waiting())
    return;
  asio::post(io_, [this, manifest] {
    Waiter& queue = *connection_queues_[manifest];
    if (!queue.waiting()) return;
    Waiter& first = *queue.next;
    first.unlink();
    first.wake(first);  // connects, or queues again at the back
  });
}

void Worker::forget_reassigned_endpoints() {
  // An id goes to another name only once no snapshot lists its old one and no request pinned to
  // such a snapshot is left (snapshot::EndpointRegistry), so nothing here is in use: idle
  // connections to the old address, its breaker and its load belong to no one now.
  const auto& current = snapshot_->endpoint_incarnations;
  for (std::size_t id = 0; id < current.size(); ++id) {
    const std::uint32_t before = id < endpoint_incarnations_.size() ? endpoint_incarnations_[id] : 0;
    if (current[id] == before) continue;
    const auto endpoint = static_cast<manifest::EndpointId>(id);
    health_.forget(endpoint);
    if (id >= pools_.size() || !pools_[id]) continue;
    pools_[id]->close_all();
    if (pools_[id]->open_count() != 0) {  // not expected; never reused for the new address, though
      spdlog::warn("worker {}: endpoint id {} reassigned with {} connection(s) still out", index_, id,
                   pools_[id]->open_count());
      pools_[id]->retire();
      retired_pools_.push_back(std::move(pools_[id]));
    }
    pools_[id].reset();
  }
  endpoint_incarnations_ = current;
}

upstream::UpstreamPool& Worker::pool(manifest::EndpointId id) {
  if (id >= pools_.size()) pools_.resize(id + 1);
  if (!pools_[id]) pools_[id] = std::make_unique<upstream::UpstreamPool>(io_, id);
  return *pools_[id];
}

void Worker::schedule_tick() {
  tick_due_ = pipeline::Clock::now() + kTick;
  ticker_.expires_at(tick_due_);
  ticker_.async_wait([this](const error_code& ec) {
    if (ec) return;
    tick();
  });
}

namespace {

// Resident memory of this process, from /proc/self/statm (one small read per tick, only when asked).
std::uint64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

// Sessions whose deadline has passed, a batch at a time: a thousand slowloris connections timing out
// together would otherwise be cut (a 408 and a close each) in one handler, and every request ready
// meanwhile would wait for all of them. Between batches the event loop serves what is ready.
void Worker::expire_sessions(pipeline::Clock::time_point now) {
  constexpr unsigned kBatch = 32;
  unsigned expired = 0;
  for (Session* s = sessions_; s != nullptr;) {
    Session* next = s->next_;  // on_deadline may recycle s
    if (s->deadline() <= now) {
      s->on_deadline(now);
      if (++expired == kBatch) {
        // The rest after what is ready now (the walk restarts: `next` may be gone by then).
        asio::post(io_, [this, now] { expire_sessions(now); });
        return;
      }
    } else if (s->watch_at() <= now) {
      s->watch_client();
    }
    s = next;
  }
}

void Worker::tick() {
  const auto now = pipeline::Clock::now();
  // Overload signals for load shedding: how late this tick ran, and memory.
  const auto& shedding = snapshot_->config.load_shedding;
  std::uint8_t level = 0;
  if (shedding.max_event_loop_lag.count() > 0) {
    const auto lag = std::chrono::duration<double>(now - tick_due_).count();
    level = std::max(level, pipeline::LoadMonitor::level_of(
                                lag, std::chrono::duration<double>(shedding.max_event_loop_lag).count()));
  }
  if (shedding.max_memory_bytes > 0)
    level = std::max(level, pipeline::LoadMonitor::level_of(static_cast<double>(resident_bytes()),
                                                            static_cast<double>(shedding.max_memory_bytes)));
  load_.tick_level = level;
  expire_sessions(now);
  // Parked connections idle for client_idle are closed, oldest first (the list is in that order).
  const auto idle_cutoff = now - snapshot_->config.timeouts.client_idle;
  while (parked_oldest_ != nullptr && parked_oldest_->idle_since <= idle_cutoff) close_parked(parked_oldest_, true);
  const auto cutoff = now - snapshot_->config.upstream_pool.idle_timeout;
  for (auto& pool : pools_)
    if (pool) pool->close_idle_before(cutoff);
  std::erase_if(retired_pools_, [](const auto& pool) { return pool->open_count() == 0; });
  // Connection slots freed on other workers are not announced here: every waiter tries again.
  // By index: a woken request may queue for another manifest and grow the vector.
  for (std::size_t i = 0; i < connection_queues_.size(); ++i) {
    if (!connection_queues_[i] || !connection_queues_[i]->waiting()) continue;
    Waiter woken;
    woken.splice_from(*connection_queues_[i]);
    while (woken.waiting()) {
      Waiter& w = *woken.next;
      w.unlink();
      w.wake(w);
    }
  }
  access_log_.flush();
  if (draining_) {
    // Tunnels (WebSockets) never end by themselves: once every request has drained, they close.
    bool only_tunnels = session_count_ != 0;
    for (Session* s = sessions_; s != nullptr && only_tunnels; s = s->next_) only_tunnels = s->tunneling();
    if (now >= drain_deadline_ || only_tunnels) {
      if (only_tunnels) spdlog::info("worker {}: drained, closing {} tunnel(s)", index_, session_count_);
      else spdlog::warn("worker {}: drain deadline reached, closing {} connection(s)", index_, session_count_);
      for (Session* s = sessions_; s != nullptr;) {
        Session* next = s->next_;
        s->force_close();
        s = next;
      }
    }
    check_drained();
    if (session_count_ == 0) return;
  }
  schedule_tick();
}

void Worker::check_drained() {
  if (session_count_ != 0) return;
  for (auto& pool : pools_)
    if (pool) pool->close_all();
  if (global_limiter_) global_limiter_->stop();
  ticker_.cancel();
}

void Worker::begin_drain(std::chrono::steady_clock::time_point deadline) {
  asio::post(io_, [this, deadline] {
    if (draining_) return;
    draining_ = true;
    drain_deadline_ = deadline;
    error_code ignored;
    for (auto& listener : listeners_) {
      listener->acceptor.close(ignored);
      listener->retry.cancel();
    }
    for (Session* s = sessions_; s != nullptr;) {
      Session* next = s->next_;
      s->drain();
      s = next;
    }
    while (parked_oldest_ != nullptr) close_parked(parked_oldest_, true);  // idle: nothing to finish
    free_sessions_.clear();
    check_drained();
  });
}

void Worker::install_snapshot(std::shared_ptr<const snapshot::Snapshot> snapshot) {
  asio::post(io_, [this, snapshot = std::move(snapshot)]() mutable {
    snapshot_ = std::move(snapshot);
    health_.install(*snapshot_);
    forget_reassigned_endpoints();
    // Counters by position in the new list of limits (the stages hold a pointer to this vector).
    if (rate_limit_counts_.size() < snapshot_->rate_limit_labels.size())
      rate_limit_counts_.resize(snapshot_->rate_limit_labels.size());
  });
}

}  // namespace frontdoor::server
