#pragma once
// Server: the process. Builds the snapshot, binds every listener once per worker (SO_REUSEPORT),
// runs the workers on their threads and the control loop (signals, drain) on the calling thread.
#include <string>

#include "frontdoor/config/config.hpp"

namespace frontdoor::server {

struct RunOptions {
  std::string ports_file;  // written once every listener is bound: "<listener-name> <port>" per line
  std::string config_path;  // what a reload reads; empty (frontdoor proxy): nothing to reload
};

// Blocks until SIGTERM/SIGINT and the drain that follows. Returns the process exit code.
int run_server(const config::Config& config, const RunOptions& options);

// Applies logging.level to the default logger; returns false for an unknown level.
bool configure_logging(const std::string& level);

}  // namespace frontdoor::server
