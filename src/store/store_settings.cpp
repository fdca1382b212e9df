#include "frontdoor/store/store_settings.hpp"

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace frontdoor::store {
namespace {

// One connection string from its three possible sources; "" when none is named.
std::optional<std::string> one(const std::string& direct, const std::string& env, const std::string& file,
                               const char* what, std::string& error) {
  if (!direct.empty()) return direct;
  if (!env.empty()) {
    const char* value = std::getenv(env.c_str());
    if (value == nullptr || *value == '\0') {
      error = std::string("postgres.") + what + "_env names " + env + ", which is not set";
      return std::nullopt;
    }
    return std::string(value);
  }
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    if (in) text << in.rdbuf();
    std::string value = text.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' ')) value.pop_back();
    if (!in || value.empty()) {
      error = std::string("postgres.") + what + "_file " + file + (in ? " is empty" : " cannot be read");
      return std::nullopt;
    }
    return value;
  }
  return std::string();
}

}  // namespace

std::optional<ConnectionStrings> connection_strings(const config::PostgresConfig& pg, std::string& error) {
  ConnectionStrings out;
  auto primary = one(pg.dsn, pg.dsn_env, pg.dsn_file, "dsn", error);
  if (!primary) return std::nullopt;
  if (primary->empty()) {
    error = "no postgres section (dsn, dsn_env or dsn_file)";
    return std::nullopt;
  }
  auto replica = one(pg.replica_dsn, pg.replica_dsn_env, {}, "replica_dsn", error);
  auto listen = one(pg.listen_dsn, pg.listen_dsn_env, {}, "listen_dsn", error);
  if (!replica || !listen) return std::nullopt;
  out.primary = std::move(*primary);
  out.replica = std::move(*replica);
  out.listen = listen->empty() ? out.primary : std::move(*listen);
  return out;
}

io::RedisOptions redis_options(const config::RedisConfig& redis) {
  io::RedisOptions options;
  options.address = redis.address;
  if (!redis.password_env.empty())
    if (const char* password = std::getenv(redis.password_env.c_str())) options.password = password;
  options.database = redis.database;
  options.connect_timeout = redis.connect_timeout;
  options.command_timeout = redis.command_timeout;
  return options;
}

std::string redis_manifest_key(std::string_view prefix, std::string_view joined_key) {
  return std::string(prefix) + "manifest:" + std::string(joined_key);
}
std::string redis_index_key(std::string_view prefix) { return std::string(prefix) + "manifest-index"; }
std::string redis_channel(std::string_view prefix) { return std::string(prefix) + "manifest-changes"; }

std::string redis_manifest_value(std::uint64_t version, std::string_view document) {
  return std::to_string(version) + "\n" + std::string(document);
}

std::optional<RedisManifest> parse_redis_manifest(std::string_view value) {
  const auto newline = value.find('\n');
  if (newline == std::string_view::npos || newline == 0) return std::nullopt;
  RedisManifest out;
  if (std::from_chars(value.data(), value.data() + newline, out.version).ptr != value.data() + newline ||
      out.version == 0)
    return std::nullopt;
  out.document = value.substr(newline + 1);
  return out;
}

}  // namespace frontdoor::store
