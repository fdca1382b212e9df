#pragma once
// ManifestStore: manifests from PostgreSQL (the source of truth), through Redis (L2), into the
// in-process cache (L1) that every worker reads without a lock — docs/manifests.md.
//
// - The index: every stored key and its version, read at start, every manifest_cache.index_refresh
//   and after each (re)connection of the LISTEN; kept in Redis for a replica that starts while
//   PostgreSQL is down. A request whose route matches no stored key costs no query at all.
// - A document is fetched when a request first needs it (single flight: one fetch per key however
//   many requests wait), refreshed in the background after 80 % of its ttl, replaced at once when a
//   change is announced (NOTIFY), and evicted oldest first beyond max_entries / max_bytes.
// - Each fetch tries Redis, then PostgreSQL. Each tier has its own breaker and timeout: a dead one
//   costs one timeout, then is skipped until its breaker half-opens. A document that fails the
//   daemon's rules is never served: the last good copy stays, the error is logged and counted.
//   When every tier fails the last good copy keeps serving (stale-if-error); with none, the
//   embedded manifests do, for a few seconds before the next try.
// - Every change of what the workers see is published as a new Snapshot (the base snapshot of the
//   config plus the loaded manifests and the index), through `publish`.
//
// Threads: everything on the control thread's io_context, except the blocking pools' jobs and the
// LISTEN thread, whose results are posted back to it. Owned by the server; stop() before the
// io_context goes away.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontdoor/config/config.hpp"
#include "frontdoor/io/redis_client.hpp"
#include "frontdoor/resilience/circuit_breaker.hpp"
#include "frontdoor/snapshot/snapshot.hpp"
#include "frontdoor/stats/request_tally.hpp"
#include "frontdoor/store/blocking_pool.hpp"
#include "frontdoor/store/change_listener.hpp"
#include "frontdoor/store/manifest_sql.hpp"
#include "frontdoor/store/store_settings.hpp"

namespace frontdoor::store {

enum class Tier : std::uint8_t { redis, postgres };

struct TierCounters {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;  // the tier did not hold the document
  std::uint64_t errors = 0;  // no answer in time, connection lost, breaker open
  stats::RequestTally::Histogram load_seconds;  // fetch time, answered or not (fd_module_load_seconds)
};

struct StoreCounters {
  TierCounters redis;
  TierCounters postgres;
  std::uint64_t stale_served = 0;       // fetches that failed while the last good copy kept serving
  std::uint64_t embedded_fallbacks = 0;  // fetches that failed with no copy: embedded manifests served
  std::uint64_t invalid_documents = 0;
  std::uint64_t notifications = 0;  // PostgreSQL NOTIFY and Redis messages (the same change may come twice)
  std::uint64_t index_loads = 0;
  std::uint64_t index_failures = 0;
  std::uint64_t evictions = 0;
  std::uint64_t refreshes = 0;  // background and announced
};

struct StoreStatus {
  bool index_known = false;
  std::string index_source;  // "postgres", "redis" or "" (none yet)
  std::size_t keys = 0;      // in the index
  std::size_t loaded = 0;    // documents in L1
  std::uint64_t loaded_bytes = 0;
  bool listening = false;    // the LISTEN connection is up
  bool postgres_ok = false;  // the last PostgreSQL query answered
  bool redis_connected = false;
  bool postgres_breaker_open = false;
  bool redis_breaker_open = false;
};

class ManifestStore {
 public:
  using Publish = std::function<void(std::shared_ptr<const snapshot::Snapshot>)>;

  // `registry` is the one the config's snapshots use (control thread). Fails (nullptr, `error` set)
  // when a connection string's variable or file is missing.
  static std::unique_ptr<ManifestStore> create(boost::asio::io_context& control, const config::Config& config,
                                               snapshot::EndpointRegistry& registry, Publish publish,
                                               std::string& error);
  ~ManifestStore();

  // Publishes `base` with the store's (empty) view and starts reading the index.
  void start(std::shared_ptr<const snapshot::Snapshot> base);
  void stop();
  // A reload: the loaded documents are compiled again against the new base, and published.
  void rebase(std::shared_ptr<const snapshot::Snapshot> base);

  // A worker waits for `key` ("project/module/environment", a stored key): `done` runs on the
  // control thread once what the workers see for it is published (loaded, or known unavailable).
  void fetch(const std::string& key, std::function<void()> done);
  // A worker saw `key` due for refresh: fetched in the background, requests keep the copy they have.
  void refresh(const std::string& key);
  // Resolves the host names of the loaded manifests again (off the loop); a changed answer is
  // published. The server's resolve timer calls it.
  void refresh_addresses();

  const StoreCounters& counters() const noexcept { return counters_; }
  StoreStatus status() const;

 private:
  struct Prepared;
  struct Entry;
  ManifestStore(boost::asio::io_context& control, const config::Config& config, snapshot::EndpointRegistry& registry,
                Publish publish, ConnectionStrings dsn);

  void start_fetch(Entry& e);
  void fetch_from_redis(Entry& e);
  void fetch_from_postgres(Entry& e, bool from_primary);
  void prepare_then(Entry& e, Tier tier, std::uint64_t version, std::string document);
  void on_prepared(const std::string& key, std::uint64_t fetch_id, Tier tier, std::shared_ptr<Prepared> prepared);
  void install(Entry& e, Prepared& prepared, Tier tier);
  void fetch_failed(Entry& e, const std::string& why);
  void finish_fetch(Entry& e);
  void forget(const std::string& key);
  void evict_beyond_bounds(const Entry& keep);
  void load_index(const char* why);
  // `seq`: changes_heard_ when the index was asked for (announcements after it are newer).
  void on_index(std::vector<std::pair<StoredKey, std::uint64_t>> index, const char* source, std::uint64_t seq);
  void on_change(const std::string& payload);
  void on_listen_state(bool connected, const std::string& error);
  void settle_index();
  void schedule_publish();
  void publish_now();
  void count_fetch(Tier tier, std::chrono::steady_clock::time_point started);
  bool breaker_allows(resilience::CircuitBreaker& breaker);
  void write_redis(const std::vector<std::string>& args);

  boost::asio::io_context& control_;
  config::Config config_;
  snapshot::EndpointRegistry& registry_;
  Publish publish_;
  ConnectionStrings dsn_;
  std::shared_ptr<const snapshot::Snapshot> base_;

  std::map<std::string, std::unique_ptr<Entry>> entries_;  // the index, by "p/m/e"
  std::vector<std::string> slots_;  // L1 slot -> key ("" free): the manifest's place after the embedded ones
  std::uint64_t loaded_bytes_ = 0;
  std::size_t loaded_count_ = 0;
  std::uint64_t next_fetch_id_ = 0;
  std::uint64_t changes_heard_ = 0;  // announcements applied
  bool index_known_ = false;
  bool index_settled_ = false;  // read once, or the first read failed: requests no longer wait for it
  std::vector<std::function<void()>> index_waiters_;
  std::string index_source_;
  bool listening_ = false;
  bool postgres_ok_ = false;
  bool publish_pending_ = false;
  bool stopped_ = false;
  std::vector<std::function<void()>> after_publish_;

  resilience::CircuitBreaker redis_breaker_;
  resilience::CircuitBreaker postgres_breaker_;
  std::unique_ptr<io::RedisClient> redis_;
  std::unique_ptr<io::RedisClient> redis_changes_;  // subscribed to the changes channel
  bool redis_subscribed_once_ = false;
  std::unique_ptr<BlockingPool> reads_;    // the replica when one is configured, else the primary
  std::unique_ptr<BlockingPool> primary_;  // only with a replica: what the replica has not caught up with
  std::unique_ptr<BlockingPool> prepare_;  // documents from Redis: checked and resolved off the loop
  std::unique_ptr<ChangeListener> listener_;
  boost::asio::steady_timer index_timer_;
  StoreCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace frontdoor::store
