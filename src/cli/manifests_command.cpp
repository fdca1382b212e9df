#include "manifests_command.hpp"

#include <hiredis/hiredis.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <pqxx/pqxx>
#include <sstream>
#include <string>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/store/manifest_sql.hpp"
#include "frontdoor/store/store_settings.hpp"

namespace frontdoor::cli {
namespace {

constexpr std::string_view kUsage = R"(usage: frontdoor manifests COMMAND -c CONFIG [ARGS]

The manifest store (PostgreSQL, named by CONFIG's postgres section; see docs/manifests.md).
  migrate                      create or upgrade the tables
  put FILE                     store every manifest of FILE (YAML: manifests: [...], today's format),
                               checked by the daemon's rules first: nothing is written if any is wrong
  get PROJECT/MODULE/ENV       print a stored manifest (JSON)
  list                         every stored key, its version and when it changed
  delete PROJECT/MODULE/ENV    remove a manifest (its history stays)
  history PROJECT/MODULE/ENV   every version of a key
  rollback PROJECT/MODULE/ENV VERSION
                               store VERSION's document again, as a new version
Each change is announced to every running daemon (NOTIFY, and Redis when CONFIG has one).
Exit status: 0 done, 1 refused or failed (the reason on stderr), 2 usage.
)";

int usage_error(std::string_view message) {
  std::cerr << "frontdoor manifests: " << message << "\n\n" << kUsage;
  return 2;
}

int fail(std::string_view message) {
  std::cerr << "frontdoor manifests: " << message << "\n";
  return 1;
}

std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open the file";
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Keeps Redis (L2) in step with a change: the new document (or none), the index, an announcement.
// Best effort: a daemon never serves an L2 copy older than the version it was told of.
class RedisWriter {
 public:
  explicit RedisWriter(const config::RedisConfig& rc) : prefix_(rc.key_prefix) {
    if (!rc.enabled()) return;
    const timeval timeout{static_cast<time_t>(rc.connect_timeout.count() / 1000),
                          static_cast<suseconds_t>(rc.connect_timeout.count() % 1000 * 1000)};
    std::string address = rc.address;
    // With Sentinels: the first that answers names the primary.
    for (const auto& sentinel : rc.sentinels) {
      context_.reset(connect(sentinel, timeout));
      if (!ok()) continue;
      auto* reply = static_cast<redisReply*>(
          redisCommand(context_.get(), "SENTINEL get-master-addr-by-name %s", rc.sentinel_master.c_str()));
      if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        const std::string host = reply->element[0]->str;
        address = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + reply->element[1]->str;
      }
      if (reply != nullptr) freeReplyObject(reply);
      if (!address.empty()) break;
    }
    if (address.empty()) {
      std::cerr << "frontdoor manifests: warning: no Sentinel named the primary of " << rc.sentinel_master
                << " (daemons reading Redis only see the change when they next read PostgreSQL)\n";
      context_.reset();
      return;
    }
    context_.reset(connect(address, timeout));
    if (ok()) redisSetTimeout(context_.get(), timeout);  // every command, not only the connect
    if (!ok()) {
      warn("cannot connect to " + address);
      return;
    }
    if (const char* password = rc.password_env.empty() ? nullptr : std::getenv(rc.password_env.c_str()))
      if (!command({"AUTH", password})) return;
    if (rc.database != 0) command({"SELECT", std::to_string(rc.database)});
  }

  void apply(const std::vector<store::Change>& changes, const std::vector<std::string>& documents,
             const std::optional<std::vector<std::pair<store::StoredKey, std::uint64_t>>>& index,
             std::chrono::seconds ttl) {
    if (!ok()) return;
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const auto key = store::redis_manifest_key(prefix_, changes[i].key.joined());
      if (changes[i].deleted) command({"DEL", key});
      else command({"SET", key, store::redis_manifest_value(changes[i].version, documents[i]), "EX",
                    std::to_string(ttl.count())});
    }
    if (index) {
      std::string text;
      for (const auto& [key, version] : *index) text += key.joined() + " " + std::to_string(version) + "\n";
      command({"SET", store::redis_index_key(prefix_), text});
    }
    for (const auto& change : changes) command({"PUBLISH", store::redis_channel(prefix_), change.payload()});
  }

 private:
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  static redisContext* connect(const std::string& address, const timeval& timeout) {
    if (address.rfind("unix:", 0) == 0) return redisConnectUnixWithTimeout(address.substr(5).c_str(), timeout);
    const auto colon = address.rfind(':');
    std::string host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return redisConnectWithTimeout(host.c_str(), std::atoi(address.c_str() + colon + 1), timeout);
  }
  bool ok() const { return context_ && context_->err == 0; }
  void warn(std::string_view what) {
    std::cerr << "frontdoor manifests: warning: Redis: " << what << ": "
              << (context_ ? context_->errstr : "out of memory")
              << " (daemons reading Redis only see the change when they next read PostgreSQL)\n";
    context_.reset();
  }
  bool command(std::vector<std::string> args) {
    if (!ok()) return false;
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    const bool good = reply != nullptr && reply->type != REDIS_REPLY_ERROR;
    if (reply != nullptr && !good) std::cerr << "frontdoor manifests: warning: Redis " << args[0] << ": " << reply->str << "\n";
    if (reply != nullptr) freeReplyObject(reply);
    if (reply == nullptr) warn(args[0]);
    return good;
  }

  std::string prefix_;
  std::unique_ptr<redisContext, Free> context_;
};

std::optional<store::StoredKey> key_argument(std::string_view text) {
  auto key = store::split_key(text);
  if (!key) return std::nullopt;
  for (const auto* part : {&key->project, &key->module, &key->environment})
    if (!config::is_key_part(*part)) return std::nullopt;
  return key;
}

}  // namespace

int manifests_command(const std::vector<std::string_view>& all) {
  if (all.empty()) return usage_error("missing command");
  const auto command = all[0];
  if (command == "-h" || command == "--help") return std::cout << kUsage, 0;
  std::string config_path;
  std::vector<std::string> operands;
  for (std::size_t i = 1; i < all.size(); ++i) {
    const auto arg = all[i];
    if (arg == "-h" || arg == "--help") return std::cout << kUsage, 0;
    if (arg == "-c" || arg == "--config") {
      if (i + 1 >= all.size()) return usage_error(std::string(arg) + " needs a file");
      config_path = all[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option " + std::string(arg));
    } else {
      operands.emplace_back(arg);
    }
  }
  const std::size_t wanted = command == "migrate" || command == "list"  ? 0
                             : command == "rollback"                   ? 2
                             : command == "put" || command == "get" || command == "delete" || command == "history" ? 1
                                                                       : SIZE_MAX;
  if (wanted == SIZE_MAX) return usage_error("unknown command " + std::string(command));
  if (config_path.empty()) return usage_error(std::string(command) + " needs -c CONFIG");
  if (operands.size() != wanted)
    return usage_error(std::string(command) + " takes " + std::to_string(wanted) + " argument(s), got " +
                       std::to_string(operands.size()));
  auto loaded = config::load_config_file(config_path);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    return 1;
  }
  const config::Config& cfg = *loaded.config;
  std::optional<store::StoredKey> key;
  if (command != "migrate" && command != "list" && command != "put") {
    key = key_argument(operands[0]);
    if (!key) return usage_error(operands[0] + " is not PROJECT/MODULE/ENVIRONMENT (each [A-Za-z0-9._-]+ or *)");
  }
  std::uint64_t rollback_to = 0;
  if (command == "rollback") {
    const auto& v = operands[1];
    if (std::from_chars(v.data(), v.data() + v.size(), rollback_to).ptr != v.data() + v.size() || rollback_to == 0)
      return usage_error(v + " is not a version (expected a number from `history`)");
  }
  // Check a file before connecting anywhere: a wrong file fails the same with the database down.
  config::ManifestsResult put;
  if (command == "put") {
    std::string error;
    auto text = read_file(operands[0], error);
    if (!text) return fail(error);
    put = config::load_manifests_string(*text, operands[0], cfg, config::ManifestsForm::list);
    if (!put.errors.empty()) {
      for (const auto& e : put.errors) std::cerr << e.to_string() << "\n";
      return fail(operands[0] + ": nothing was written (" + std::to_string(put.errors.size()) + " error(s))");
    }
  }
  std::string error;
  const auto dsn = store::connection_strings(cfg.postgres, error);
  if (!dsn) return fail(config_path + ": " + error);
  std::unique_ptr<pqxx::connection> db;
  try {
    db = std::make_unique<pqxx::connection>(dsn->primary);
  } catch (const std::exception& e) {
    return fail(std::string("cannot connect to PostgreSQL: ") + e.what());
  }
  try {
    if (command == "migrate") {
      for (const auto& line : store::migrate(*db)) std::cout << line << "\n";
      return 0;
    }
    if (store::schema_version(*db) == 0)
      return fail("the database has no manifest tables: run `frontdoor manifests migrate -c " + config_path + "`");
    std::vector<store::Change> changes;
    std::vector<std::string> documents;
    if (command == "list") {
      for (const auto& m : store::list_manifests(*db))
        std::cout << m.key.joined() << "  version " << m.version << "  " << m.updated_at << "\n";
      return 0;
    }
    if (command == "get") {
      const auto m = store::read_manifest(*db, *key, std::chrono::seconds(30));
      if (!m) return fail(key->joined() + " is not stored");
      std::cout << m->document << "\n";
      std::cerr << "# " << key->joined() << " version " << m->version << ", updated " << m->updated_at << "\n";
      return 0;
    }
    if (command == "history") {
      const auto lines = store::read_history(*db, *key);
      if (lines.empty()) return fail(key->joined() + " has no history");
      for (const auto& h : lines)
        std::cout << "version " << h.version << "  " << h.operation << "  " << h.changed_at << "  by " << h.changed_by
                  << "\n";
      return 0;
    }
    if (command == "put") {
      std::vector<std::pair<store::StoredKey, std::string>> docs;
      for (std::size_t i = 0; i < put.manifests.size(); ++i)
        docs.emplace_back(store::StoredKey{put.manifests[i].project, put.manifests[i].module, put.manifests[i].environment},
                          put.documents[i]);
      changes = store::put_manifests(*db, docs);
      documents = put.documents;
    } else if (command == "delete") {
      auto change = store::delete_manifest(*db, *key);
      if (!change) return fail(key->joined() + " is not stored");
      changes.push_back(*change);
      documents.emplace_back();
    } else {  // rollback
      auto document = store::historic_document(*db, *key, rollback_to);
      if (!document) return fail(key->joined() + " has no version " + std::to_string(rollback_to) + " with a document");
      // The old document must still pass today's rules (the top level may have changed since).
      auto checked = config::load_manifests_string(*document, key->joined() + "@" + std::to_string(rollback_to), cfg,
                                                   config::ManifestsForm::one);
      if (!checked.errors.empty()) {
        for (const auto& e : checked.errors) std::cerr << e.to_string() << "\n";
        return fail("version " + std::to_string(rollback_to) + " no longer passes the checks: nothing was written");
      }
      changes = store::put_manifests(*db, {{*key, checked.documents[0]}}, "rollback");
      documents = checked.documents;
    }
    for (const auto& c : changes)
      std::cout << (c.deleted ? "deleted " : "stored ") << c.key.joined() << " version " << c.version << "\n";
    // Committed: from here on nothing may turn the exit status into a failure.
    std::optional<std::vector<std::pair<store::StoredKey, std::uint64_t>>> index;
    try {
      index = store::read_index(*db, std::chrono::seconds(30));
    } catch (const std::exception& e) {
      std::cerr << "frontdoor manifests: warning: the change is stored, but the index could not be read for Redis: "
                << e.what() << "\n";
    }
    RedisWriter(cfg.redis).apply(changes, documents, index,
                                 std::chrono::duration_cast<std::chrono::seconds>(cfg.manifest_cache.redis_ttl));
    return 0;
  } catch (const std::exception& e) {
    return fail(std::string("PostgreSQL: ") + e.what());
  }
}

}  // namespace frontdoor::cli
