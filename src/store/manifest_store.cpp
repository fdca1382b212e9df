#include "manifest_store_internal.hpp"

namespace frontdoor::store {

using namespace detail;

namespace {

resilience::CircuitBreakerConfig tier_breaker() {
  resilience::CircuitBreakerConfig c;
  c.consecutive_failures = 1;  // one timeout is all a dead tier may cost
  c.open_duration = std::chrono::seconds(2);
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Start, stop, reload

std::unique_ptr<ManifestStore> ManifestStore::create(asio::io_context& control, const config::Config& config,
                                                     snapshot::EndpointRegistry& registry, Publish publish,
                                                     std::string& error) {
  auto dsn = connection_strings(config.postgres, error);  // with connect and keep-alive timeouts
  if (!dsn) return nullptr;
  return std::unique_ptr<ManifestStore>(new ManifestStore(control, config, registry, std::move(publish), std::move(*dsn)));
}

ManifestStore::ManifestStore(asio::io_context& control, const config::Config& config,
                             snapshot::EndpointRegistry& registry, Publish publish, ConnectionStrings dsn)
    : control_(control), config_(config), registry_(registry), publish_(std::move(publish)), dsn_(std::move(dsn)),
      redis_breaker_(tier_breaker()), postgres_breaker_(tier_breaker()), index_timer_(control) {}

ManifestStore::~ManifestStore() { stop(); }

void ManifestStore::start(std::shared_ptr<const snapshot::Snapshot> base) {
  base_ = std::move(base);
  const auto& pg = config_.postgres;
  // A read's answer is due within query_timeout (its statement_timeout); a second more, and the
  // server is taken for hung and the connection cut.
  const auto job_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(pg.query_timeout) + kHungQueryGrace;
  reads_ = std::make_unique<BlockingPool>("fd-pg", dsn_.replica.empty() ? dsn_.primary : dsn_.replica, pg.pool_size,
                                          job_timeout);
  if (!dsn_.replica.empty())
    primary_ = std::make_unique<BlockingPool>("fd-pg-primary", dsn_.primary, 1, job_timeout);
  prepare_ = std::make_unique<BlockingPool>("fd-manifests", std::string(), 1);
  if (config_.redis.enabled()) {
    redis_ = std::make_unique<io::RedisClient>(control_, redis_options(config_.redis));
    redis_->start();
    // Changes also come through Redis, for a replica that cannot reach PostgreSQL.
    redis_changes_ = std::make_unique<io::RedisClient>(control_, redis_options(config_.redis));
    redis_changes_->subscribe(
        redis_channel(config_.redis.key_prefix),
        [](void* user, const std::string_view* message) {
          auto& self = *static_cast<ManifestStore*>(user);
          if (message != nullptr) return self.on_change(std::string(*message));
          // (Re)subscribed: what was announced meanwhile is found by reading the index again.
          if (std::exchange(self.redis_subscribed_once_, true)) self.load_index("Redis subscription back");
        },
        this);
    redis_changes_->start();
  }
  const auto alive = alive_;
  listener_ = std::make_unique<ChangeListener>(
      dsn_.listen, kChannel, std::chrono::duration_cast<std::chrono::milliseconds>(pg.connect_timeout), job_timeout,
      [this, alive](const std::string& payload) {
        asio::post(control_, [this, alive, payload] {
          if (*alive) on_change(payload);
        });
      },
      [this, alive](bool connected, const std::string& error) {
        asio::post(control_, [this, alive, connected, error] {
          if (*alive) on_listen_state(connected, error);
        });
      });
  listener_->start();
  publish_now();
  load_index("start");
}

void ManifestStore::stop() {
  if (stopped_) return;
  stopped_ = true;
  *alive_ = false;
  if (listener_) listener_->stop();
  for (auto* pool : {reads_.get(), primary_.get(), prepare_.get()})
    if (pool) pool->stop();
  if (redis_) redis_->stop();
  if (redis_changes_) redis_changes_->stop();
  index_timer_.cancel();
  for (auto& [key, e] : entries_)
    if (e->deadline) e->deadline->cancel();
}

void ManifestStore::rebase(std::shared_ptr<const snapshot::Snapshot> base) {
  base_ = std::move(base);
  publish_now();
}

StoreStatus ManifestStore::status() const {
  StoreStatus s;
  s.index_known = index_known_;
  s.index_source = index_source_;
  s.keys = entries_.size();
  s.loaded = loaded_count_;
  s.loaded_bytes = loaded_bytes_;
  s.listening = listening_;
  s.postgres_ok = postgres_ok_;
  s.redis_connected = redis_ && redis_->connected();
  const auto now = Clock::now();
  s.postgres_breaker_open = postgres_breaker_.half_open_at() > now;
  s.redis_breaker_open = redis_breaker_.half_open_at() > now;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Fetching one document

void ManifestStore::fetch(const std::string& key, std::function<void()> done) {
  if (key.empty()) {  // the index: answered once it was read, or given up on for now
    if (index_settled_ || stopped_) {
      after_publish_.push_back(std::move(done));
      return schedule_publish();
    }
    index_waiters_.push_back(std::move(done));
    return;
  }
  const auto it = entries_.find(key);
  if (it == entries_.end() || stopped_) {
    // Not (or no longer) stored: the worker's view is older than the index. It looks again.
    after_publish_.push_back(std::move(done));
    return schedule_publish();
  }
  Entry& e = *it->second;
  const auto now = Clock::now();
  if (!e.fetching && ((e.loaded && now < e.expires_at && e.version >= e.index_version) ||
                      (!e.loaded && now < e.expires_at))) {
    after_publish_.push_back(std::move(done));  // already there (or known unavailable): once published
    return schedule_publish();
  }
  e.waiters.push_back(std::move(done));
  if (!e.fetching) start_fetch(e);
}

void ManifestStore::refresh(const std::string& key) {
  const auto it = entries_.find(key);
  if (it == entries_.end() || it->second->fetching || stopped_) return;
  ++counters_.refreshes;
  start_fetch(*it->second);
}

void ManifestStore::start_fetch(Entry& e) {
  e.fetching = true;
  e.fetch_again = false;
  e.absent_in_redis = false;
  // Nothing newer than a document refused: no read, and the copy (or the embedded manifests) serve
  // on, as after any failed fetch, without a new log line.
  if (e.refused_version != 0 && e.index_version <= e.refused_version) return fetch_failed(e, {});
  e.fetch_id = ++next_fetch_id_;
  e.fetch_started = Clock::now();
  // However the tiers fare, the waiters get an answer within this (the session's own backstop is
  // longer): then the stale copy or the embedded manifests serve them.
  const auto budget = config_.redis.command_timeout + config_.postgres.connect_timeout +
                      config_.postgres.query_timeout + kPrepareBudget;
  e.deadline = std::make_unique<asio::steady_timer>(control_, budget);
  e.deadline->async_wait([this, alive = alive_, key = e.joined, id = e.fetch_id, budget](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    const auto it = entries_.find(key);
    if (it == entries_.end() || it->second->fetch_id != id || !it->second->fetching) return;
    it->second->fetch_id = ++next_fetch_id_;  // whatever still comes of this fetch is ignored
    fetch_failed(*it->second, fmt::format("no answer within {} ms",
                                          std::chrono::duration_cast<std::chrono::milliseconds>(budget).count()));
  });
  // Redis first: a copy there older than the newest version announced is not taken (see below).
  if (redis_ && redis_->connected() && breaker_allows(redis_breaker_)) return fetch_from_redis(e);
  fetch_from_postgres(e, false);
}

bool ManifestStore::breaker_allows(resilience::CircuitBreaker& breaker) {
  return breaker.allow(Clock::now());
}

void ManifestStore::count_fetch(Tier tier, Clock::time_point started) {
  auto& h = (tier == Tier::redis ? counters_.redis : counters_.postgres).load_seconds;
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::size_t b = 0;
  while (b < stats::RequestTally::kBuckets.size() && seconds > stats::RequestTally::kBuckets[b]) ++b;
  ++h.counts[b];
  ++h.count;
  h.sum += seconds;
}

void ManifestStore::fetch_from_redis(Entry& e) {
  struct Call {
    ManifestStore* store;
    std::string key;
    std::uint64_t fetch_id;
    Clock::time_point started;
    std::shared_ptr<bool> alive;
  };
  const std::string redis_key = redis_manifest_key(config_.redis.key_prefix, e.joined);
  const std::string_view args[] = {"GET", redis_key};
  auto* call = new Call{this, e.joined, e.fetch_id, Clock::now(), alive_};
  const auto on_reply = [](void* user, const redisReply* reply) {
    std::unique_ptr<Call> c(static_cast<Call*>(user));
    if (!*c->alive) return;
    ManifestStore& self = *c->store;
    // The breaker learns how Redis answered whether or not anyone still waits for this answer.
    const bool failed = reply == nullptr || reply->type == REDIS_REPLY_ERROR;
    if (failed) self.redis_breaker_.on_failure(Clock::now());
    else self.redis_breaker_.on_success(Clock::now());
    self.count_fetch(Tier::redis, c->started);
    const auto it = self.entries_.find(c->key);
    if (it == self.entries_.end() || it->second->fetch_id != c->fetch_id || !it->second->fetching) return;
    Entry& entry = *it->second;
    if (failed) {
      ++self.counters_.redis.errors;
      return self.fetch_from_postgres(entry, false);
    }
    if (reply->type != REDIS_REPLY_STRING) {
      ++self.counters_.redis.misses;
      entry.absent_in_redis = reply->type == REDIS_REPLY_NIL;
      return self.fetch_from_postgres(entry, false);
    }
    const auto parsed = parse_redis_manifest(std::string_view(reply->str, reply->len));
    if (!parsed) {
      ++self.counters_.invalid_documents;
      spdlog::error("manifest store: Redis holds a malformed entry for {} (not \"<version>\\n<document>\"): reading "
                    "PostgreSQL", entry.joined);
      return self.fetch_from_postgres(entry, false);
    }
    // Older than a change already announced; or newer than anything PostgreSQL's index holds (a
    // restored database, another environment's keys under the same prefix): such a copy was served
    // over the source of truth, and again after every index refresh. PostgreSQL decides.
    if (parsed->version < entry.index_version ||
        (parsed->version > entry.index_version && self.index_source_ == "postgres")) {
      ++self.counters_.redis.misses;
      return self.fetch_from_postgres(entry, false);
    }
    ++self.counters_.redis.hits;
    self.prepare_then(entry, Tier::redis, parsed->version, std::string(parsed->document));
  };
  if (!redis_->command(args, on_reply, call)) {
    delete call;
    ++counters_.redis.errors;
    redis_breaker_.on_failure(Clock::now());
    fetch_from_postgres(e, false);
  }
}

void ManifestStore::fetch_from_postgres(Entry& e, bool from_primary) {
  if (!breaker_allows(postgres_breaker_)) {
    ++counters_.postgres.errors;
    return fetch_failed(e, "PostgreSQL is unavailable (its breaker is open)");
  }
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config_.postgres.query_timeout);
  const std::uint64_t id = e.fetch_id;
  const auto started = Clock::now();
  // The breaker hears of this query once: from its answer, or from this timer (the pool's thread may
  // be connecting first, so it allows for that). Whichever comes first settles it.
  auto settled = std::make_shared<bool>(false);
  e.postgres_deadline = std::make_unique<asio::steady_timer>(control_, config_.postgres.query_timeout +
                                                                           config_.postgres.connect_timeout);
  e.postgres_deadline->async_wait([this, alive = alive_, key = e.joined, id, started, settled](const boost::system::error_code& ec) {
    if (ec || !*alive || *settled) return;
    *settled = true;
    count_fetch(Tier::postgres, started);
    ++counters_.postgres.errors;
    postgres_ok_ = false;
    postgres_breaker_.on_failure(Clock::now());
    const auto it = entries_.find(key);
    if (it == entries_.end() || it->second->fetch_id != id || !it->second->fetching) return;
    it->second->fetch_id = ++next_fetch_id_;  // what still comes of that query is ignored
    fetch_failed(*it->second, "PostgreSQL did not answer in time");
  });
  BlockingPool& pool = from_primary && primary_ ? *primary_ : *reads_;
  pool.submit([this, alive = alive_, key = e.key, joined = e.joined, id, timeout, started, settled, from_primary](
                  pqxx::connection_base* connection, const std::string& connect_error) {
    auto row = std::make_shared<std::optional<StoredManifest>>();
    std::string error;
    if (connection == nullptr) {
      error = "cannot connect: " + connect_error;
    } else {
      try {
        *row = read_manifest(*connection, key, timeout);
      } catch (const std::exception& ex) {
        error = trimmed(ex.what());
      }
    }
    asio::post(control_, [this, alive, joined, id, started, settled, from_primary, row, error] {
      if (!*alive) return;
      if (!*settled) {
        *settled = true;
        count_fetch(Tier::postgres, started);
        postgres_ok_ = error.empty();
        if (error.empty()) postgres_breaker_.on_success(Clock::now());
        else postgres_breaker_.on_failure(Clock::now());
        if (!error.empty()) ++counters_.postgres.errors;
      }
      const auto it = entries_.find(joined);
      if (it == entries_.end() || it->second->fetch_id != id || !it->second->fetching) return;
      Entry& entry = *it->second;
      entry.postgres_deadline.reset();
      if (!error.empty()) return fetch_failed(entry, "PostgreSQL: " + error);
      // The replica may lag behind an announced change: the primary has the last word.
      const bool authoritative = from_primary || !primary_;
      if (!row->has_value()) {
        if (!authoritative) return fetch_from_postgres(entry, true);
        ++counters_.postgres.misses;
        spdlog::info("manifest store: {} is not stored (any more)", joined);
        return forget(joined);
      }
      if ((*row)->version < entry.index_version) {
        if (!authoritative) return fetch_from_postgres(entry, true);
        // The change was announced while this read ran: the read began before its commit. Read
        // again, its waiters still waiting (within the fetch's deadline), rather than take the
        // older row for the truth: that served it, and wrote it over the newer copy in Redis,
        // until the next index refresh.
        if (entry.fetch_again) {
          entry.fetch_again = false;
          return fetch_from_postgres(entry, true);
        }
        // What was announced is not what the primary holds (a lost commit, a forged NOTIFY): the
        // primary wins, or this key would be fetched forever.
        entry.index_version = (*row)->version;
        entry.delete_announced = false;
      }
      ++counters_.postgres.hits;
      prepare_then(entry, Tier::postgres, (*row)->version, std::move((*row)->document));
    });
  });
}

void ManifestStore::prepare_then(Entry& e, Tier tier, std::uint64_t version, std::string document) {
  auto base = base_;
  prepare_->submit([this, alive = alive_, joined = e.joined, id = e.fetch_id, tier, version,
                    document = std::move(document), base](pqxx::connection_base*, const std::string&) {
    auto prepared = std::make_shared<Prepared>();
    prepared->found = true;
    prepared->version = version;
    prepared->document = document;
    if (document.size() > kMaxDocumentBytes) {
      prepared->problems.push_back(fmt::format("the document is {} bytes (at most {})", document.size(),
                                               kMaxDocumentBytes));
    } else {
      auto loaded = config::load_manifests_string(document, (tier == Tier::redis ? "redis:" : "postgres:") + joined,
                                                  base->config, config::ManifestsForm::one);
      for (const auto& err : loaded.errors) prepared->problems.push_back(err.to_string());
      if (loaded.errors.empty()) {
        prepared->manifest = std::move(loaded.manifests[0]);
        prepared->addresses = snapshot::resolve_endpoints(prepared->manifest, prepared->problems);
        prepared->unresolved_only = !prepared->problems.empty();
      }
    }
    asio::post(control_, [this, alive, joined, id, tier, prepared] {
      if (*alive) on_prepared(joined, id, tier, prepared);
    });
  });
}

void ManifestStore::on_prepared(const std::string& key, std::uint64_t fetch_id, Tier tier,
                                std::shared_ptr<Prepared> prepared) {
  const auto it = entries_.find(key);
  if (it == entries_.end() || it->second->fetch_id != fetch_id || !it->second->fetching) return;
  Entry& e = *it->second;
  const auto& m = prepared->manifest;
  if (prepared->problems.empty() && (m.project != e.key.project || m.module != e.key.module ||
                                     m.environment != e.key.environment))
    prepared->problems.push_back("the document names " + m.project + "/" + m.module + "/" + m.environment +
                                 ", not the key it is stored under");
  if (!prepared->problems.empty()) {
    ++counters_.invalid_documents;
    for (const auto& p : prepared->problems)
      spdlog::error("manifest store: {} version {} from {} is not served: {}", key, prepared->version,
                    tier == Tier::redis ? "Redis" : "PostgreSQL", p);
    if (tier == Tier::redis) return fetch_from_postgres(e, false);  // the source of truth may be right
    // Invalid as written (a name that did not resolve may resolve on the next try): reading it again
    // would only log this again, every 2 s, and move the whole document each time.
    if (!prepared->unresolved_only) e.refused_version = prepared->version;
    return fetch_failed(e, "the stored document is invalid");
  }
  install(e, *prepared, tier);
}

void ManifestStore::install(Entry& e, Prepared& prepared, Tier tier) {
  const auto now = Clock::now();
  const auto& cache = config_.manifest_cache;
  if (e.loaded) loaded_bytes_ -= e.bytes;
  else ++loaded_count_;
  e.loaded = true;
  e.version = prepared.version;
  e.index_version = std::max(e.index_version, prepared.version);
  e.bytes = prepared.document.size();
  loaded_bytes_ += e.bytes;
  e.manifest = std::move(prepared.manifest);
  e.addresses = std::move(prepared.addresses);
  e.loaded_at = now;
  e.refresh_at = now + cache.ttl * 4 / 5;
  e.expires_at = now + cache.ttl;
  e.stale = false;
  e.refresh_asked = std::make_shared<std::atomic<bool>>(false);
  e.pinned = true;
  if (e.slot < 0) {
    const auto free = std::find(slots_.begin(), slots_.end(), std::string());
    e.slot = static_cast<std::int32_t>(free - slots_.begin());
    if (free == slots_.end()) slots_.push_back(e.joined);
    else *free = e.joined;
  }
  if (tier == Tier::postgres && redis_) {
    write_redis({"SET", redis_manifest_key(config_.redis.key_prefix, e.joined),
                 redis_manifest_value(prepared.version, prepared.document), "EX",
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(cache.redis_ttl).count())});
  }
  evict_beyond_bounds(e);
  finish_fetch(e);
}

// `why` empty: a document refused already, said so once.
void ManifestStore::fetch_failed(Entry& e, const std::string& why) {
  const auto now = Clock::now();
  if (e.delete_announced && e.absent_in_redis) {
    // PostgreSQL cannot confirm the delete, but Redis agrees with it (the CLI removes the copy when
    // it deletes): kept, a deleted route would serve for as long as the cut lasts, while a put in
    // the same state is taken from Redis.
    spdlog::info("manifest store: {} deleted (announced, and gone from Redis; PostgreSQL unreachable: {})", e.joined,
                 why);
    return forget(e.joined);
  }
  if (e.loaded) {
    ++counters_.stale_served;
    e.stale = true;  // the workers count what it serves as stale, though its expiry moved on
    if (!why.empty()) spdlog::warn("manifest store: cannot fetch {} ({}): version {} keeps serving, next try in {} s", e.joined, why,
                 e.version, kRetryAfterFailure.count());
    // A failed background refresh leaves a copy that is still fresh as it was.
    e.refresh_at = now + kRetryAfterFailure;
    e.expires_at = std::max(e.expires_at, now + kRetryAfterFailure);
  } else {
    ++counters_.embedded_fallbacks;
    if (!why.empty()) spdlog::warn("manifest store: cannot fetch {} ({}): the embedded manifests serve its requests, next try in {} s",
                 e.joined, why, kRetryAfterFailure.count());
    e.expires_at = now + kRetryAfterFailure;
  }
  e.refresh_asked = std::make_shared<std::atomic<bool>>(false);
  finish_fetch(e);
}

void ManifestStore::finish_fetch(Entry& e) {
  e.fetching = false;
  e.deadline.reset();
  e.postgres_deadline.reset();
  for (auto& w : e.waiters) after_publish_.push_back(std::move(w));
  e.waiters.clear();
  schedule_publish();
  if (e.fetch_again) start_fetch(e);
}

void ManifestStore::forget(const std::string& key) {
  const auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = *it->second;
  if (e.loaded) {
    --loaded_count_;
    loaded_bytes_ -= e.bytes;
  }
  if (e.slot >= 0) slots_[static_cast<std::size_t>(e.slot)].clear();
  for (auto& w : e.waiters) after_publish_.push_back(std::move(w));
  entries_.erase(it);
  schedule_publish();
}

void ManifestStore::evict_beyond_bounds(const Entry& keep) {
  const auto& cache = config_.manifest_cache;
  while (loaded_count_ > cache.max_entries || loaded_bytes_ > cache.max_bytes) {
    Entry* oldest = nullptr;
    for (auto& [key, e] : entries_)
      if (e->loaded && e.get() != &keep && !e->fetching && !e->pinned &&
          (oldest == nullptr || e->loaded_at < oldest->loaded_at))
        oldest = e.get();
    if (oldest == nullptr) return;
    ++counters_.evictions;
    --loaded_count_;
    loaded_bytes_ -= oldest->bytes;
    oldest->loaded = false;
    oldest->version = 0;
    oldest->manifest = {};
    oldest->addresses.clear();
    oldest->expires_at = {};
    slots_[static_cast<std::size_t>(oldest->slot)].clear();
    oldest->slot = -1;
  }
}

void ManifestStore::write_redis(const std::vector<std::string>& args) {
  if (!redis_ || !redis_->connected()) return;
  std::vector<std::string_view> views(args.begin(), args.end());
  redis_->command(views, [](void*, const redisReply*) {}, nullptr);
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// Publishing to the workers

void ManifestStore::schedule_publish() {
  if (publish_pending_ || stopped_) return;
  publish_pending_ = true;
  // Coalesced: every change made in this turn of the loop goes out in one snapshot.
  asio::post(control_, [this, alive = alive_] {
    if (*alive) publish_now();
  });
}

void ManifestStore::publish_now() {
  publish_pending_ = false;
  if (!base_) return;
  auto next = std::make_shared<snapshot::Snapshot>(*base_);
  const std::size_t embedded = base_->embedded_manifests;
  std::vector<manifest::Manifest> all(base_->manifests.manifests().begin(),
                                      base_->manifests.manifests().begin() + static_cast<std::ptrdiff_t>(embedded));
  all.resize(embedded + slots_.size());
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    auto& m = all[embedded + i];
    const auto it = slots_[i].empty() ? entries_.end() : entries_.find(slots_[i]);
    if (it == entries_.end() || !it->second->loaded) {
      m.project = "(free)";  // a free slot: no request reaches it
      m.module = m.environment = "-";
      m.policy = base_->default_policy;
      continue;
    }
    m = snapshot::compile_manifest(it->second->manifest, it->second->addresses, *next, registry_);
  }
  next->manifests = manifest::ManifestTable(std::move(all), embedded);
  auto index = std::make_shared<manifest::StoredIndex>();
  for (const auto& [joined, e] : entries_) {
    manifest::StoredEntry s;
    s.key = joined;
    s.manifest = e->loaded ? static_cast<std::int32_t>(embedded) + e->slot : -1;
    s.version = e->version;
    s.refresh_at = e->refresh_at;
    s.expires_at = e->expires_at;
    s.stale = e->stale;
    s.refresh_asked = e->refresh_asked;
    index->add(e->key.project, e->key.module, e->key.environment, std::move(s));
  }
  index->set_known(index_settled_);
  next->stored = std::move(index);
  for (auto& [joined, e] : entries_) e->pinned = false;
  snapshot::name_endpoints(*next, registry_);
  publish_(std::move(next));
  auto done = std::move(after_publish_);
  after_publish_.clear();
  for (auto& d : done) d();
}

}  // namespace frontdoor::store
