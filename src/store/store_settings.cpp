#include "frontdoor/store/store_settings.hpp"

#include <libpq-fe.h>

#include <chrono>
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

// `dsn` (either libpq form) with the timeouts a proxy needs added where it names none: libpq's
// connect_timeout, TCP keep-alives and tcp_user_timeout, so that a PostgreSQL that vanishes without
// a reset (a dead node, a network cut) fails a query or a LISTEN in seconds instead of hanging a
// thread for the kernel's two hours. A string libpq cannot parse is returned as it is: connecting
// reports what is wrong with it.
std::string with_timeouts(const std::string& dsn, const config::PostgresConfig& pg) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return dsn;
  }
  const auto seconds = [](config::Duration d) {
    return std::to_string(std::max<long long>(2, std::chrono::ceil<std::chrono::seconds>(d).count()));
  };
  const std::pair<std::string, std::string> wanted[] = {
      {"connect_timeout", seconds(pg.connect_timeout)},
      {"keepalives", "1"},
      {"keepalives_idle", "5"},
      {"keepalives_interval", "2"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout",
       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(pg.connect_timeout + pg.query_timeout).count() +
                      5000)},
  };
  std::string out;
  const auto add = [&](const std::string& key, const std::string& value) {
    out += (out.empty() ? "" : " ") + key + "='";
    for (const char c : value) {
      if (c == '\\' || c == '\'') out += '\\';
      out += c;
    }
    out += '\'';
  };
  for (auto* o = options; o->keyword != nullptr; ++o)
    if (o->val != nullptr) add(o->keyword, o->val);
  for (const auto& [key, value] : wanted) {
    bool named = false;
    for (auto* o = options; o->keyword != nullptr; ++o) named = named || (key == o->keyword && o->val != nullptr);
    if (!named) add(key, value);
  }
  PQconninfoFree(options);
  return out;
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
  out.primary = with_timeouts(*primary, pg);
  out.replica = replica->empty() ? std::string() : with_timeouts(*replica, pg);
  out.listen = listen->empty() ? out.primary : with_timeouts(*listen, pg);
  return out;
}

io::RedisOptions redis_options(const config::RedisConfig& redis) {
  io::RedisOptions options;
  options.address = redis.address;
  options.sentinels = redis.sentinels;
  options.sentinel_master = redis.sentinel_master;
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
