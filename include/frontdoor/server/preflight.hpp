#pragma once
// What `run` refuses at start beyond the file's own validity, checked without starting anything:
// each TLS listener's certificate and key, the access log's destination, admin.token_env. So that a
// file `frontdoor check` passes starts, and a file a reload accepts would start after a restart.
// (The loader has validated the file; DNS and redis.key_secret_env are the snapshot's checks.)
#include <string>
#include <vector>

#include "frontdoor/config/config.hpp"

namespace frontdoor::server {

// One line per problem, "what: why" (the caller prefixes the file's name).
std::vector<std::string> preflight(const config::Config& config);

}  // namespace frontdoor::server
