#include "frontdoor/store/manifest_sql.hpp"

#include <algorithm>
#include <charconv>

#include <pqxx/pqxx>

#include "frontdoor/config/loader.hpp"

namespace frontdoor::store {
namespace {

// Applied in order, once each; never edited once released (add a new one instead).
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE manifests (
  project     text        NOT NULL,
  module      text        NOT NULL,
  environment text        NOT NULL,
  version     bigint      NOT NULL CHECK (version > 0),
  document    jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project, module, environment)
);
CREATE TABLE manifest_history (
  id          bigserial   PRIMARY KEY,
  project     text        NOT NULL,
  module      text        NOT NULL,
  environment text        NOT NULL,
  version     bigint      NOT NULL,
  document    jsonb,      -- NULL: deleted at this version
  operation   text        NOT NULL CHECK (operation IN ('put', 'delete', 'rollback')),
  changed_by  text        NOT NULL DEFAULT current_user,
  changed_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project, module, environment, version)
);
)sql",
};

void set_timeout(pqxx::transaction_base& tx, std::chrono::milliseconds timeout) {
  tx.exec0("SET LOCAL statement_timeout = " + std::to_string(std::max<long long>(1, timeout.count())));
}

// Serializes the changes of one key (versions are max + 1), for this transaction only.
void lock_key(pqxx::transaction_base& tx, const StoredKey& key) {
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))", "frontdoor_manifest:" + key.joined());
}

std::uint64_t next_version(pqxx::transaction_base& tx, const StoredKey& key) {
  const auto r = tx.exec_params1(
      "SELECT coalesce(max(version), 0) + 1 FROM manifest_history WHERE project = $1 AND module = $2 AND "
      "environment = $3",
      key.project, key.module, key.environment);
  return r[0].as<std::uint64_t>();
}

void announce(pqxx::transaction_base& tx, const Change& change) {
  tx.exec_params("SELECT pg_notify($1, $2)", kChannel, change.payload());
}

}  // namespace

std::optional<StoredKey> split_key(std::string_view joined) {
  const auto a = joined.find('/');
  if (a == std::string_view::npos) return std::nullopt;
  const auto b = joined.find('/', a + 1);
  if (b == std::string_view::npos || joined.find('/', b + 1) != std::string_view::npos) return std::nullopt;
  StoredKey key{std::string(joined.substr(0, a)), std::string(joined.substr(a + 1, b - a - 1)),
                std::string(joined.substr(b + 1))};
  if (key.project.empty() || key.module.empty() || key.environment.empty()) return std::nullopt;
  return key;
}

std::string Change::payload() const {
  return std::string(deleted ? "delete " : "put ") + key.project + " " + key.module + " " + key.environment + " " +
         std::to_string(version);
}

std::optional<Change> Change::parse(std::string_view payload) {
  std::vector<std::string_view> words;
  while (!payload.empty() && words.size() < 6) {
    const auto space = payload.find(' ');
    words.push_back(payload.substr(0, space));
    payload = space == std::string_view::npos ? std::string_view() : payload.substr(space + 1);
  }
  if (words.size() != 5 || (words[0] != "put" && words[0] != "delete")) return std::nullopt;
  Change change;
  change.deleted = words[0] == "delete";
  change.key = {std::string(words[1]), std::string(words[2]), std::string(words[3])};
  const auto v = words[4];
  if (std::from_chars(v.data(), v.data() + v.size(), change.version).ec != std::errc() || change.version == 0)
    return std::nullopt;
  for (const auto* part : {&change.key.project, &change.key.module, &change.key.environment})
    if (!config::is_key_part(*part)) return std::nullopt;
  return change;
}

int schema_version(pqxx::connection_base& connection) {
  pqxx::read_transaction tx(connection);
  const auto exists = tx.exec1("SELECT to_regclass('frontdoor_migrations') IS NOT NULL");
  if (!exists[0].as<bool>()) return 0;
  return tx.exec1("SELECT coalesce(max(version), 0) FROM frontdoor_migrations")[0].as<int>();
}

std::vector<std::string> migrate(pqxx::connection_base& connection) {
  std::vector<std::string> done;
  pqxx::work tx(connection);
  tx.exec("SELECT pg_advisory_xact_lock(hashtext('frontdoor_migrations'))");
  tx.exec0(
      "CREATE TABLE IF NOT EXISTS frontdoor_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT "
      "NULL DEFAULT now())");
  const int applied = tx.exec1("SELECT coalesce(max(version), 0) FROM frontdoor_migrations")[0].as<int>();
  const int count = static_cast<int>(std::size(kMigrations));
  for (int v = applied + 1; v <= count; ++v) {
    tx.exec0(kMigrations[v - 1]);
    tx.exec_params0("INSERT INTO frontdoor_migrations (version) VALUES ($1)", v);
    done.push_back("applied migration " + std::to_string(v));
  }
  tx.commit();
  if (done.empty()) done.push_back("schema is up to date (version " + std::to_string(applied) + ")");
  return done;
}

std::vector<std::pair<StoredKey, std::uint64_t>> read_index(pqxx::connection_base& connection,
                                                            std::chrono::milliseconds timeout) {
  pqxx::read_transaction tx(connection);
  set_timeout(tx, timeout);
  std::vector<std::pair<StoredKey, std::uint64_t>> index;
  for (const auto& row : tx.exec("SELECT project, module, environment, version FROM manifests"))
    index.emplace_back(StoredKey{row[0].c_str(), row[1].c_str(), row[2].c_str()}, row[3].as<std::uint64_t>());
  return index;
}

std::optional<StoredManifest> read_manifest(pqxx::connection_base& connection, const StoredKey& key,
                                            std::chrono::milliseconds timeout) {
  pqxx::read_transaction tx(connection);
  set_timeout(tx, timeout);
  const auto r = tx.exec_params(
      "SELECT version, document::text, updated_at::text FROM manifests WHERE project = $1 AND module = $2 AND "
      "environment = $3",
      key.project, key.module, key.environment);
  if (r.empty()) return std::nullopt;
  return StoredManifest{key, r[0][0].as<std::uint64_t>(), r[0][1].c_str(), r[0][2].c_str()};
}

std::vector<StoredManifest> list_manifests(pqxx::connection_base& connection) {
  pqxx::read_transaction tx(connection);
  std::vector<StoredManifest> out;
  for (const auto& row : tx.exec("SELECT project, module, environment, version, document::text, updated_at::text "
                                 "FROM manifests ORDER BY project, module, environment"))
    out.push_back({{row[0].c_str(), row[1].c_str(), row[2].c_str()}, row[3].as<std::uint64_t>(), row[4].c_str(),
                   row[5].c_str()});
  return out;
}

std::vector<HistoryLine> read_history(pqxx::connection_base& connection, const StoredKey& key) {
  pqxx::read_transaction tx(connection);
  std::vector<HistoryLine> out;
  for (const auto& row : tx.exec_params(
           "SELECT version, operation, changed_by, changed_at::text, document IS NOT NULL FROM manifest_history "
           "WHERE project = $1 AND module = $2 AND environment = $3 ORDER BY version",
           key.project, key.module, key.environment))
    out.push_back({row[0].as<std::uint64_t>(), row[1].c_str(), row[2].c_str(), row[3].c_str(), row[4].as<bool>()});
  return out;
}

std::optional<std::string> historic_document(pqxx::connection_base& connection, const StoredKey& key,
                                             std::uint64_t version) {
  pqxx::read_transaction tx(connection);
  const auto r = tx.exec_params(
      "SELECT document::text FROM manifest_history WHERE project = $1 AND module = $2 AND environment = $3 AND "
      "version = $4 AND document IS NOT NULL",
      key.project, key.module, key.environment, version);
  if (r.empty()) return std::nullopt;
  return std::string(r[0][0].c_str());
}

std::vector<Change> put_manifests(pqxx::connection_base& connection,
                                  const std::vector<std::pair<StoredKey, std::string>>& documents,
                                  std::string_view operation) {
  std::vector<Change> changes;
  pqxx::work tx(connection);
  // Keys locked in one order by every writer: two puts of overlapping files cannot deadlock.
  std::vector<const StoredKey*> order;
  for (const auto& d : documents) order.push_back(&d.first);
  std::sort(order.begin(), order.end(), [](const StoredKey* a, const StoredKey* b) { return a->joined() < b->joined(); });
  for (const auto* key : order) lock_key(tx, *key);
  for (const auto& [key, document] : documents) {
    Change change{false, key, next_version(tx, key)};
    tx.exec_params0(
        "INSERT INTO manifests (project, module, environment, version, document) VALUES ($1, $2, $3, $4, "
        "$5::jsonb) ON CONFLICT (project, module, environment) DO UPDATE SET version = EXCLUDED.version, document = "
        "EXCLUDED.document, updated_at = now()",
        key.project, key.module, key.environment, change.version, document);
    tx.exec_params0(
        "INSERT INTO manifest_history (project, module, environment, version, document, operation) VALUES ($1, $2, "
        "$3, $4, $5::jsonb, $6)",
        key.project, key.module, key.environment, change.version, document, std::string(operation));
    announce(tx, change);
    changes.push_back(std::move(change));
  }
  tx.commit();
  return changes;
}

std::optional<Change> delete_manifest(pqxx::connection_base& connection, const StoredKey& key) {
  pqxx::work tx(connection);
  lock_key(tx, key);
  const auto gone = tx.exec_params("DELETE FROM manifests WHERE project = $1 AND module = $2 AND environment = $3",
                                   key.project, key.module, key.environment);
  if (gone.affected_rows() == 0) return std::nullopt;
  Change change{true, key, next_version(tx, key)};
  tx.exec_params0(
      "INSERT INTO manifest_history (project, module, environment, version, document, operation) VALUES ($1, $2, "
      "$3, $4, NULL, 'delete')",
      key.project, key.module, key.environment, change.version);
  announce(tx, change);
  tx.commit();
  return change;
}

}  // namespace frontdoor::store
