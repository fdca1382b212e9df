#pragma once
// The manifest store's tables and every statement run on them, shared by the daemon and
// `frontdoor manifests`. Blocking (libpqxx 6.4): control-side pool threads and the CLI only.
//
// Statements are sent unprepared with parameters (one round trip each, no session state), so they
// run unchanged through PgBouncer in transaction pooling; a timeout is set per transaction.
// Every change is one transaction: the row, its history line and a NOTIFY on kChannel, so a
// listener hears of a change exactly when it is visible.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace frontdoor::store {

inline constexpr const char* kChannel = "frontdoor_manifests";

struct StoredKey {
  std::string project;
  std::string module;
  std::string environment;

  std::string joined() const { return project + "/" + module + "/" + environment; }  // parts never hold '/'
  friend bool operator==(const StoredKey&, const StoredKey&) = default;
};
// "p/m/e" -> its parts; nullopt unless exactly three non-empty parts.
std::optional<StoredKey> split_key(std::string_view joined);

struct StoredManifest {
  StoredKey key;
  std::uint64_t version = 0;
  std::string document;  // JSON (jsonb's text form)
  std::string updated_at;
};

struct HistoryLine {
  std::uint64_t version = 0;
  std::string operation;  // put | delete | rollback
  std::string changed_by;
  std::string changed_at;
  bool has_document = false;
};

// A change as announced on kChannel: "put|delete <project> <module> <environment> <version>".
struct Change {
  bool deleted = false;
  StoredKey key;
  std::uint64_t version = 0;

  std::string payload() const;
  static std::optional<Change> parse(std::string_view payload);
};

// Applies the migrations not applied yet (serialized by an advisory lock); returns what it did,
// one line per migration.
std::vector<std::string> migrate(pqxx::connection_base& connection);
// The schema version applied (0: none).
int schema_version(pqxx::connection_base& connection);

// Reads, with `timeout` as the transaction's statement_timeout.
std::vector<std::pair<StoredKey, std::uint64_t>> read_index(pqxx::connection_base& connection,
                                                            std::chrono::milliseconds timeout);
std::optional<StoredManifest> read_manifest(pqxx::connection_base& connection, const StoredKey& key,
                                            std::chrono::milliseconds timeout);
std::vector<StoredManifest> list_manifests(pqxx::connection_base& connection);
std::vector<HistoryLine> read_history(pqxx::connection_base& connection, const StoredKey& key);
std::optional<std::string> historic_document(pqxx::connection_base& connection, const StoredKey& key,
                                             std::uint64_t version);

// Changes: each writes the row and its history line, announces it, and returns the change (the
// new version). `documents` pairs each key with its JSON; all or none are written.
std::vector<Change> put_manifests(pqxx::connection_base& connection,
                                  const std::vector<std::pair<StoredKey, std::string>>& documents,
                                  std::string_view operation = "put");
// nullopt when the key is not stored.
std::optional<Change> delete_manifest(pqxx::connection_base& connection, const StoredKey& key);

}  // namespace frontdoor::store
