#pragma once
// Where the manifest store's data lives, shared by the daemon and `frontdoor manifests`: the
// PostgreSQL connection strings the config names (directly, by environment variable or by file,
// for a Kubernetes Secret) and how Redis (L2) holds manifests.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "frontdoor/config/config.hpp"
#include "frontdoor/io/redis_client.hpp"

namespace frontdoor::store {

struct ConnectionStrings {
  std::string primary;
  std::string replica;  // empty: reads go to the primary
  std::string listen;   // for LISTEN: a direct connection (defaults to primary)
};
// nullopt and `error` set when a named variable or file is missing or empty: the caller decides
// whether that is fatal (the CLI) or means running on the embedded manifests alone (the daemon).
std::optional<ConnectionStrings> connection_strings(const config::PostgresConfig& pg, std::string& error);

// The RedisClient options of the redis section (the password read from its environment variable).
io::RedisOptions redis_options(const config::RedisConfig& redis);

// Redis (L2):
//   <prefix>manifest:<project>/<module>/<environment>  "<version>\n<document JSON>", with a TTL
//   <prefix>manifest-index                              "<p>/<m>/<e> <version>\n" per stored key
//   channel <prefix>manifest-changes                     store::Change payloads
std::string redis_manifest_key(std::string_view prefix, std::string_view joined_key);
std::string redis_index_key(std::string_view prefix);
std::string redis_channel(std::string_view prefix);
std::string redis_manifest_value(std::uint64_t version, std::string_view document);
struct RedisManifest {
  std::uint64_t version = 0;
  std::string_view document;
};
std::optional<RedisManifest> parse_redis_manifest(std::string_view value);

}  // namespace frontdoor::store
