#include "frontdoor/cli/cli.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/core/address.hpp"
#include "frontdoor/server/preflight.hpp"
#include "frontdoor/server/server.hpp"
#include "frontdoor/snapshot/snapshot.hpp"
#include "frontdoor/version.hpp"
#include "manifests_command.hpp"

namespace frontdoor::cli {
namespace {

constexpr std::string_view kMainUsage = R"(frontdoor — edge reverse proxy

usage:
  frontdoor run -c FILE [--ports-file PATH]     run the daemon on a config file
  frontdoor check -c FILE                       validate a config file and exit (0 = valid)
  frontdoor reload -c FILE                      make the running daemon reload FILE (its admin listener)
  frontdoor proxy --to HOST:PORT[,...] [...]    zero-config reverse proxy to the given upstreams
  frontdoor manifests COMMAND -c FILE [...]     the manifest store: migrate, put, get, list, delete,
                                                history, rollback
  frontdoor --version                           print the version

`frontdoor COMMAND --help` describes a command.
)";

constexpr std::string_view kRunUsage = R"(usage: frontdoor run -c FILE [--ports-file PATH]

Runs the daemon with the configuration in FILE (YAML; see docs/configuration.md).
SIGTERM or SIGINT drains it: listeners close, requests in flight finish (up to
server.drain_timeout), then it exits 0.

options:
  -c, --config FILE    configuration file (required)
  --ports-file PATH    once listening, write "<listener-name> <port>" lines to PATH
                       (useful with port 0 in tests and scripts)
  -h, --help           this text
)";

constexpr std::string_view kReloadUsage = R"(usage: frontdoor reload -c FILE

Like `nginx -s reload`: asks the daemon running with FILE to reload it, through the admin listener
FILE names (POST /reload, with the bearer token of admin.token_env when set), and prints the
result: the new generation, or every error of the file (the old configuration keeps serving).
Exits 0 when reloaded, 1 when refused or unreachable. Without an admin listener, send SIGHUP.

options:
  -c, --config FILE    configuration file (required)
  -h, --help           this text
)";

constexpr std::string_view kCheckUsage = R"(usage: frontdoor check -c FILE

Validates FILE like `nginx -t`: prints every error as FILE:LINE:COL: message and exits 1,
or prints "FILE: configuration ok" and exits 0. Host names of endpoints are resolved too.

options:
  -c, --config FILE    configuration file (required)
  -h, --help           this text
)";

constexpr std::string_view kProxyUsage = R"(usage: frontdoor proxy --to HOST:PORT[,HOST:PORT...] [options]

Zero-config mode: builds an ordinary configuration in memory that routes every path to the
given upstreams (round robin) and runs the same daemon and pipeline as `frontdoor run`.

options:
  --to LIST              upstream endpoints, comma separated (required)
  --listen ADDR          address to listen on (default 0.0.0.0:8080)
  --workers N            worker threads (default: one per core)
  --access-log DEST      off | stdout | stderr | FILE (default off)
  --ports-file PATH      as for `frontdoor run`
  --admin ADDR           the admin listener (/health, /ready, /metrics) on ADDR (default off)
  --print-config         print the configuration as YAML (a starting point for a file) and exit
  -h, --help             this text
)";

struct Args {
  std::vector<std::string_view> items;
  std::size_t pos = 0;
  bool done() const { return pos >= items.size(); }
  std::string_view next() { return items[pos++]; }
};

int usage_error(std::string_view message, std::string_view usage) {
  std::cerr << "frontdoor: " << message << "\n\n" << usage;
  return 2;
}

// Reads the value of `--name VALUE` or `--name=VALUE`; false when missing.
bool take_value(Args& args, std::string_view arg, std::string_view name, std::string& out, bool& matched) {
  matched = false;
  if (arg == name) {
    matched = true;
    if (args.done()) return false;
    out = std::string(args.next());
    return true;
  }
  if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
    matched = true;
    out = std::string(arg.substr(name.size() + 1));
    return true;
  }
  return true;
}

void print_errors(const std::vector<config::ConfigError>& errors) {
  for (const auto& e : errors) std::cerr << e.to_string() << "\n";
}

int cmd_run(Args& args) {
  std::string config_path, ports_file;
  while (!args.done()) {
    const auto arg = args.next();
    if (arg == "-h" || arg == "--help") return std::cout << kRunUsage, 0;
    bool matched = false;
    if (!take_value(args, arg, "-c", config_path, matched)) return usage_error("-c needs a file", kRunUsage);
    if (matched) continue;
    if (!take_value(args, arg, "--config", config_path, matched)) return usage_error("--config needs a file", kRunUsage);
    if (matched) continue;
    if (!take_value(args, arg, "--ports-file", ports_file, matched))
      return usage_error("--ports-file needs a path", kRunUsage);
    if (matched) continue;
    return usage_error("unknown option " + std::string(arg), kRunUsage);
  }
  if (config_path.empty()) return usage_error("run needs -c FILE", kRunUsage);
  auto loaded = config::load_config_file(config_path);
  if (!loaded.config) {
    print_errors(loaded.errors);
    return 1;
  }
  return server::run_server(*loaded.config, {ports_file, config_path});
}

int cmd_check(Args& args) {
  std::string config_path;
  while (!args.done()) {
    const auto arg = args.next();
    if (arg == "-h" || arg == "--help") return std::cout << kCheckUsage, 0;
    bool matched = false;
    if (!take_value(args, arg, "-c", config_path, matched)) return usage_error("-c needs a file", kCheckUsage);
    if (matched) continue;
    if (!take_value(args, arg, "--config", config_path, matched))
      return usage_error("--config needs a file", kCheckUsage);
    if (matched) continue;
    return usage_error("unknown option " + std::string(arg), kCheckUsage);
  }
  if (config_path.empty()) return usage_error("check needs -c FILE", kCheckUsage);
  auto loaded = config::load_config_file(config_path);
  if (!loaded.config) {
    print_errors(loaded.errors);
    return 1;
  }
  // Endpoint names must resolve, as they will have to at start; so must the addresses listened on.
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  std::vector<config::ConfigError> errors;
  for (const auto& l : loaded.config->listeners) {
    auto r = resolve_address(resolver, l.address);
    if (!r) errors.push_back({config_path, 0, 0, "listener " + l.name + " address \"" + l.address + "\": " + r.error()});
  }
  if (const auto& admin = loaded.config->admin.address; !admin.empty()) {
    auto r = resolve_address(resolver, admin);
    if (!r) errors.push_back({config_path, 0, 0, "admin.address \"" + admin + "\": " + r.error()});
  }
  for (const auto& m : loaded.config->manifests) {
    for (const auto& e : m.endpoints) {
      auto r = resolve_address(resolver, e.address);
      if (!r) errors.push_back({config_path, 0, 0, "endpoint \"" + e.address + "\": " + r.error()});
    }
  }
  // What `run` checks at start beyond the file: the snapshot (environment secrets), TLS files, the
  // access log, admin.token_env. A file check passes must start.
  if (errors.empty()) {
    snapshot::EndpointRegistry registry;
    snapshot::build_snapshot(*loaded.config, registry, errors);
  }
  for (const auto& problem : server::preflight(*loaded.config)) errors.push_back({config_path, 0, 0, problem});
  if (!errors.empty()) {
    print_errors(errors);
    return 1;
  }
  std::cout << config_path << ": configuration ok\n";
  return 0;
}

// The string value of `"name":"..."` in a reply's JSON ("" when absent): the reply's own escapes undone.
std::string reply_field(std::string_view json, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":\"";
  const auto at = json.find(key);
  if (at == std::string_view::npos) return {};
  std::string value;
  for (std::size_t i = at + key.size(); i < json.size() && json[i] != '"'; ++i) {
    if (json[i] == '\\' && i + 1 < json.size()) ++i;
    value += json[i];
  }
  return value;
}

int cmd_reload(Args& args) {
  std::string config_path;
  while (!args.done()) {
    const auto arg = args.next();
    if (arg == "-h" || arg == "--help") return std::cout << kReloadUsage, 0;
    bool matched = false;
    if (!take_value(args, arg, "-c", config_path, matched)) return usage_error("-c needs a file", kReloadUsage);
    if (matched) continue;
    if (!take_value(args, arg, "--config", config_path, matched))
      return usage_error("--config needs a file", kReloadUsage);
    if (matched) continue;
    return usage_error("unknown option " + std::string(arg), kReloadUsage);
  }
  if (config_path.empty()) return usage_error("reload needs -c FILE", kReloadUsage);
  auto loaded = config::load_config_file(config_path);
  if (!loaded.config) {
    print_errors(loaded.errors);  // the daemon would refuse it too
    return 1;
  }
  const auto& admin = loaded.config->admin;
  if (admin.address.empty()) {
    std::cerr << config_path << ": no admin listener (admin.address): send SIGHUP to the daemon instead\n";
    return 1;
  }
  std::string token;
  if (!admin.token_env.empty()) {
    const char* value = std::getenv(admin.token_env.c_str());
    if (value == nullptr) {
      std::cerr << "admin.token_env names " << admin.token_env << ", which is not set here\n";
      return 1;
    }
    token = value;
  }
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  auto endpoint = resolve_address(resolver, admin.address);
  if (!endpoint) {
    std::cerr << "admin.address " << admin.address << ": " << endpoint.error() << "\n";
    return 1;
  }
  auto target = *endpoint;
  if (target.address().is_unspecified())  // 0.0.0.0 / [::]: the daemon is on this host
    target.address(target.address().is_v4() ? boost::asio::ip::address(boost::asio::ip::address_v4::loopback())
                                             : boost::asio::ip::address(boost::asio::ip::address_v6::loopback()));
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(30));  // a reload resolves host names: give it time
  beast::error_code ec;
  stream.connect(target, ec);
  if (ec) {
    std::cerr << "cannot reach the admin listener at " << admin.address << ": " << ec.message()
              << " (an edited admin section takes effect only at a restart: if the daemon still listens where "
                 "it did, send it SIGHUP)\n";
    return 1;
  }
  http::request<http::empty_body> request{http::verb::post, "/reload", 11};
  request.set(http::field::host, admin.address);
  if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
  http::write(stream, request, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  if (!ec) http::read(stream, buffer, response, ec);
  if (ec) {
    std::cerr << "reload: " << ec.message() << "\n";
    return 1;
  }
  std::cout << response.body();
  // The daemon reads the file it was started with, whatever -c says here: a reply for another file
  // reloaded something else than what was asked.
  const auto read = reply_field(response.body(), "file");
  std::error_code same_ec;  // set when `read` is not visible from here (another mount namespace): no verdict
  const bool same = read.empty() || std::filesystem::equivalent(read, config_path, same_ec);
  if (!same && !same_ec) {
    std::cerr << "the daemon reloaded " << read << ", the file it was started with, not " << config_path
              << ": edit that file, or restart the daemon with -c " << config_path << "\n";
    return 1;
  }
  return response.result_int() == 200 ? 0 : 1;
}

int cmd_proxy(Args& args) {
  std::string to, listen = "0.0.0.0:8080", workers, access_log = "off", ports_file, admin;
  bool print_config = false;
  while (!args.done()) {
    const auto arg = args.next();
    if (arg == "-h" || arg == "--help") return std::cout << kProxyUsage, 0;
    if (arg == "--print-config") {
      print_config = true;
      continue;
    }
    bool matched = false;
    for (auto [name, target] : {std::pair<std::string_view, std::string*>{"--to", &to},
                                {"--listen", &listen},
                                {"--workers", &workers},
                                {"--access-log", &access_log},
                                {"--ports-file", &ports_file},
                                {"--admin", &admin}}) {
      if (!take_value(args, arg, name, *target, matched))
        return usage_error(std::string(name) + " needs a value", kProxyUsage);
      if (matched) break;
    }
    if (!matched) return usage_error("unknown option " + std::string(arg), kProxyUsage);
  }
  if (to.empty()) return usage_error("proxy needs --to HOST:PORT[,HOST:PORT...]", kProxyUsage);

  config::Config config;
  config.source = "<frontdoor proxy>";
  config::ListenerConfig listener;
  listener.address = listen;
  config.listeners.push_back(listener);
  if (!workers.empty()) {
    try {
      std::size_t used = 0;
      const unsigned long n = std::stoul(workers, &used);
      if (used != workers.size() || n > 1024) throw std::invalid_argument(workers);
      config.server.workers = static_cast<unsigned>(n);
    } catch (const std::exception&) {
      return usage_error("--workers expects a number 0..1024 (0 = one per core)", kProxyUsage);
    }
  }
  config.logging.access_log.destination = access_log;
  config.admin.address = admin;
  config::ManifestConfig manifest;
  manifest.project = "*";
  manifest.module = "*";
  manifest.environment = "*";
  std::string_view list = to;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = list.substr(0, comma);
    if (!item.empty()) manifest.endpoints.push_back({std::string(item), 1});
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  config.manifests.push_back(manifest);
  if (auto errors = config::validate(config); !errors.empty()) {
    print_errors(errors);
    return 1;
  }
  if (print_config) {
    std::cout << config::to_yaml(config);
    return 0;
  }
  return server::run_server(config, {ports_file, {}});
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) args.items.emplace_back(argv[i]);
  try {
    if (args.done()) return usage_error("missing command", kMainUsage);
    const auto command = args.next();
    if (command == "--version" || command == "version") {
      std::cout << "frontdoor " << kVersion << "\n";
      return 0;
    }
    if (command == "-h" || command == "--help" || command == "help") return std::cout << kMainUsage, 0;
    if (command == "run") return cmd_run(args);
    if (command == "check") return cmd_check(args);
    if (command == "reload") return cmd_reload(args);
    if (command == "proxy") return cmd_proxy(args);
    if (command == "manifests")
      return manifests_command(std::vector<std::string_view>(args.items.begin() + static_cast<std::ptrdiff_t>(args.pos), args.items.end()));
    return usage_error("unknown command " + std::string(command), kMainUsage);
  } catch (const std::exception& e) {
    std::cerr << "frontdoor: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace frontdoor::cli
