#include "frontdoor/server/preflight.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "frontdoor/server/tls_files.hpp"

namespace frontdoor::server {
namespace {

// The access log's file can be opened for appending, as LogWriter::start will: it exists and is
// writable, or its directory is (checked, not created: `check` changes nothing).
std::string access_log_problem(const std::string& destination) {
  if (destination == "off" || destination == "stdout" || destination == "stderr") return {};
  std::error_code ec;
  if (std::filesystem::exists(destination, ec)) {
    if (std::filesystem::is_directory(destination, ec)) return "is a directory";
    return ::access(destination.c_str(), W_OK) == 0 ? std::string() : std::strerror(errno);
  }
  auto directory = std::filesystem::path(destination).parent_path();
  if (directory.empty()) directory = ".";
  if (!std::filesystem::is_directory(directory, ec)) return "its directory " + directory.string() + " does not exist";
  return ::access(directory.c_str(), W_OK) == 0 ? std::string() : "its directory " + directory.string() + ": " + std::strerror(errno);
}

}  // namespace

std::vector<std::string> preflight(const config::Config& config) {
  std::vector<std::string> problems;
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const auto& l = config.listeners[i];
    if (!l.tls) continue;
    if (auto context = make_tls_context(*l.tls); !context)
      problems.push_back("listeners[" + std::to_string(i) + "] (" + l.name + "): TLS: " + context.error());
  }
  if (const auto why = access_log_problem(config.logging.access_log.destination); !why.empty())
    problems.push_back("logging.access_log.destination " + config.logging.access_log.destination +
                       ": cannot be opened for appending: " + why);
  if (const auto& env = config.admin.token_env; !env.empty()) {
    const char* value = std::getenv(env.c_str());
    if (value == nullptr || *value == '\0')
      problems.push_back("admin.token_env: the environment variable " + env +
                         " is not set (run refuses to start with an open reload endpoint)");
  }
  return problems;
}

}  // namespace frontdoor::server
