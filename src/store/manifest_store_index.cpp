#include "manifest_store_internal.hpp"

namespace frontdoor::store {

using namespace detail;

void ManifestStore::refresh_addresses() {
  if (stopped_) return;
  for (const auto& [joined, e] : entries_) {
    if (!e->loaded || snapshot::host_names({e->manifest}).empty()) continue;
    prepare_->submit([this, alive = alive_, joined = joined, manifest = e->manifest, version = e->version](
                         pqxx::connection_base*, const std::string&) {
      std::vector<std::string> problems;
      auto addresses = snapshot::resolve_endpoints(manifest, problems);
      asio::post(control_, [this, alive, joined, version, addresses = std::move(addresses), problems] {
        if (!*alive) return;
        const auto it = entries_.find(joined);
        if (it == entries_.end() || !it->second->loaded || it->second->version != version) return;
        if (!problems.empty()) {  // a DNS blip: the addresses it had stay
          for (const auto& p : problems) spdlog::warn("manifest store: {}: its last addresses stay", p);
          return;
        }
        if (it->second->addresses == addresses) return;
        spdlog::info("manifest store: {}: endpoints re-resolved to other addresses", joined);
        it->second->addresses = addresses;
        schedule_publish();
      });
    });
  }
}

// The index and announced changes

void ManifestStore::load_index(const char* why) {
  if (stopped_) return;
  index_timer_.cancel();
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config_.postgres.query_timeout);
  const std::uint64_t seq = changes_heard_;
  reads_->submit([this, alive = alive_, timeout, why, seq](pqxx::connection_base* connection, const std::string& connect_error) {
    std::vector<std::pair<StoredKey, std::uint64_t>> index;
    std::string error = connection == nullptr ? "cannot connect: " + connect_error : std::string();
    if (connection != nullptr) {
      try {
        index = read_index(*connection, timeout);
      } catch (const std::exception& e) {
        error = trimmed(e.what());
      }
    }
    asio::post(control_, [this, alive, index = std::move(index), error, why, seq]() mutable {
      if (!*alive) return;
      const auto retry = [&](std::chrono::steady_clock::duration after) {
        index_timer_.expires_after(after);
        index_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
          if (!ec && *alive) load_index("retry");
        });
      };
      if (error.empty()) {
        postgres_ok_ = true;
        ++counters_.index_loads;
        on_index(std::move(index), "postgres", seq);
        return retry(config_.manifest_cache.index_refresh);
      }
      postgres_ok_ = false;
      ++counters_.index_failures;
      spdlog::warn("manifest store: cannot read the index from PostgreSQL ({}, {}){}", why, error,
                   index_known_ ? ": keeping the one known" : redis_ ? ": trying Redis" : "");
      retry(kRetryAfterFailure);
      if (index_known_ || !redis_ || !redis_->connected()) return settle_index();
      const std::string key = redis_index_key(config_.redis.key_prefix);
      const std::string_view args[] = {"GET", key};
      auto* self = new std::pair<ManifestStore*, std::shared_ptr<bool>>(this, alive_);
      if (!redis_->command(
              args,
              [](void* user, const redisReply* reply) {
                std::unique_ptr<std::pair<ManifestStore*, std::shared_ptr<bool>>> s(
                    static_cast<std::pair<ManifestStore*, std::shared_ptr<bool>>*>(user));
                if (!*s->second) return;
                if (reply == nullptr || reply->type != REDIS_REPLY_STRING || s->first->index_known_)
                  return s->first->settle_index();
                std::vector<std::pair<StoredKey, std::uint64_t>> from_redis;
                std::string_view text(reply->str, reply->len);
                while (!text.empty()) {
                  const auto eol = text.find('\n');
                  const auto line = text.substr(0, eol);
                  text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
                  const auto space = line.find(' ');
                  auto key = split_key(line.substr(0, space));
                  std::uint64_t version = 0;
                  if (space != std::string_view::npos) version = std::strtoull(std::string(line.substr(space + 1)).c_str(), nullptr, 10);
                  if (key && version > 0) from_redis.emplace_back(std::move(*key), version);
                }
                spdlog::info("manifest store: index of {} key(s) read from Redis while PostgreSQL is down",
                             from_redis.size());
                s->first->on_index(std::move(from_redis), "redis", s->first->changes_heard_);
              },
              self)) {
        delete self;
        settle_index();
      }
    });
  });
}

void ManifestStore::settle_index() {
  if (index_settled_) return;
  index_settled_ = true;  // requests stop waiting for the index (the embedded manifests serve)
  for (auto& w : index_waiters_) after_publish_.push_back(std::move(w));
  index_waiters_.clear();
  schedule_publish();
}

void ManifestStore::on_index(std::vector<std::pair<StoredKey, std::uint64_t>> index, const char* source,
                             std::uint64_t seq) {
  const bool first = !index_known_;
  settle_index();
  const bool from_postgres = std::string_view(source) == "postgres";
  index_known_ = true;
  index_source_ = source;
  std::map<std::string, std::pair<StoredKey, std::uint64_t>> next;
  for (auto& [key, version] : index) next.emplace(key.joined(), std::pair(key, version));
  std::vector<std::string> gone;
  for (const auto& [joined, e] : entries_)
    // A key announced after this index was read is newer than it: kept.
    if (!next.count(joined) && e->heard_seq <= seq) gone.push_back(joined);
  for (const auto& joined : gone) forget(joined);
  for (auto& [joined, kv] : next) {
    auto& slot = entries_[joined];
    if (!slot) {
      slot = std::make_unique<Entry>();
      slot->key = kv.first;
      slot->joined = joined;
    }
    Entry& e = *slot;
    // PostgreSQL's word replaces what announcements said (unless one came after the read): the key
    // is there, whatever a delete announcement said.
    if (from_postgres && e.heard_seq <= seq) {
      e.index_version = kv.second;
      e.delete_announced = false;
    } else if (kv.second > e.index_version) {
      e.index_version = kv.second;
      e.delete_announced = false;
    }
    if (e.loaded && e.version != e.index_version) {  // changed while we were not listening
      ++counters_.refreshes;
      if (e.fetching) e.fetch_again = true;
      else start_fetch(e);
    }
  }
  if (from_postgres && redis_) {
    std::string text;
    for (const auto& [joined, kv] : next) text += joined + " " + std::to_string(kv.second) + "\n";
    write_redis({"SET", redis_index_key(config_.redis.key_prefix), text});
  }
  if (first) spdlog::info("manifest store: {} stored key(s) (index from {})", entries_.size(), source);
  schedule_publish();
}

void ManifestStore::on_change(const std::string& payload) {
  const auto change = Change::parse(payload);
  if (!change) {
    spdlog::warn("manifest store: ignoring a malformed announcement {:?}", payload.substr(0, 200));
    return;
  }
  ++counters_.notifications;
  const std::string joined = change->key.joined();
  auto& slot = entries_[joined];
  if (!slot) {
    if (change->deleted) {  // not a key we know
      entries_.erase(joined);
      return;
    }
    slot = std::make_unique<Entry>();
    slot->key = change->key;
    slot->joined = joined;
  }
  Entry& e = *slot;
  if (change->version <= e.index_version) return;  // heard already (NOTIFY and Redis both carry it)
  spdlog::info("manifest store: {} {} version {}", joined, change->deleted ? "deleted" : "changed", change->version);
  e.index_version = change->version;
  e.delete_announced = change->deleted;
  e.heard_seq = ++changes_heard_;
  // An announcement is a hint, checked against the store: the fetch finds the new version, or finds
  // the key gone (a delete: then it leaves the index) — a forged one changes nothing for long.
  ++counters_.refreshes;
  if (e.fetching) e.fetch_again = true;
  else start_fetch(e);
  schedule_publish();
}

void ManifestStore::on_listen_state(bool connected, const std::string& error) {
  listening_ = connected;
  if (!connected) {
    spdlog::warn("manifest store: LISTEN connection lost or refused ({}): retrying; changes are read on "
                 "reconnection", error);
    return;
  }
  spdlog::info("manifest store: listening for changes on {}", kChannel);
  load_index("LISTEN connected");  // what changed while nobody listened
}

}  // namespace frontdoor::store
