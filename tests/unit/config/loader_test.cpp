#include "frontdoor/config/loader.hpp"
#include "frontdoor/core/utf8.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace frontdoor::config {
namespace {

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

// Every error of a load as "file:line:col: message", in the order reported.
Strings errors_of(const LoadResult& r) {
  Strings out;
  for (const auto& e : r.errors) out.push_back(e.to_string());
  return out;
}
Strings errors_of(const std::vector<ConfigError>& errors) {
  Strings out;
  for (const auto& e : errors) out.push_back(e.to_string());
  return out;
}

LoadResult load(std::string_view yaml) { return load_config_string(yaml, "config.yaml"); }

// The smallest valid file; tests append the section they are about.
constexpr std::string_view kMinimal =
    "listeners:\n"
    "  - address: 127.0.0.1:0\n";

// A scratch directory for TLS files and config files, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "frontdoor-config-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    std::ofstream(p) << content;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// --------------------------------------------------------------------------------------------
// Good configurations
// --------------------------------------------------------------------------------------------

TEST(ConfigLoader, ReadsEveryKey) {
  const auto r = load(R"(server:
  workers: 4
  drain_timeout: 45s
  max_connections: 500
listeners:
  - name: public
    address: "[::1]:8443"
    default_environment: staging
  - name: internal
    address: 10.0.0.1:8080
limits:
  max_request_line_bytes: 4KiB
  max_header_bytes: 16k
  max_header_count: 50
  max_body_bytes: 10MiB
timeouts:
  client_header: 5s
  client_idle: 2m
  client_body: 250ms
  upstream_connect: 1s
  upstream_response: 1h
  request_total: 0
upstream_pool:
  max_idle_per_endpoint: 0
  idle_timeout: 90s
routing:
  environment_header: X-Env
logging:
  level: debug
  access_log:
    destination: /var/log/frontdoor/access.log
    format: json
manifests:
  - project: shop
    module: cart
    environment: production
    balancing: weighted
    strip_path_prefix: yes
    endpoints:
      - address: cart-1.internal:8080
        weight: 3
      - 10.0.0.7:80
  - project: "*"
    module: "*"
    endpoints:
      - address: fallback:80
)");
  ASSERT_TRUE(r.config) << ::testing::PrintToString(errors_of(r));
  EXPECT_TRUE(r.errors.empty());
  const Config& c = *r.config;
  EXPECT_EQ(c.source, "config.yaml");
  EXPECT_EQ(c.server.workers, 4u);
  EXPECT_EQ(c.server.drain_timeout, 45s);
  EXPECT_EQ(c.server.max_connections, 500u);
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].name, "public");
  EXPECT_EQ(c.listeners[0].address, "[::1]:8443");
  EXPECT_EQ(c.listeners[0].default_environment, "staging");
  EXPECT_FALSE(c.listeners[0].tls);
  EXPECT_EQ(c.listeners[1].name, "internal");
  EXPECT_EQ(c.listeners[1].default_environment, "production");
  EXPECT_EQ(c.limits.max_request_line_bytes, 4096u);
  EXPECT_EQ(c.limits.max_header_bytes, 16384u);
  EXPECT_EQ(c.limits.max_header_count, 50u);
  EXPECT_EQ(c.limits.max_body_bytes, 10u * 1024 * 1024);
  EXPECT_EQ(c.timeouts.client_header, 5s);
  EXPECT_EQ(c.timeouts.client_idle, 120s);
  EXPECT_EQ(c.timeouts.client_body, 250ms);
  EXPECT_EQ(c.timeouts.upstream_connect, 1s);
  EXPECT_EQ(c.timeouts.upstream_response, 3600s);
  EXPECT_EQ(c.timeouts.request_total, 0ms);
  EXPECT_EQ(c.upstream_pool.max_idle_per_endpoint, 0u);
  EXPECT_EQ(c.upstream_pool.idle_timeout, 90s);
  EXPECT_EQ(c.routing.environment_header, "X-Env");
  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_EQ(c.logging.access_log.destination, "/var/log/frontdoor/access.log");
  EXPECT_EQ(c.logging.access_log.format, AccessLogFormat::json);
  ASSERT_EQ(c.manifests.size(), 2u);
  const auto& m = c.manifests[0];
  EXPECT_EQ(m.project, "shop");
  EXPECT_EQ(m.module, "cart");
  EXPECT_EQ(m.environment, "production");
  EXPECT_EQ(m.balancing, "weighted");
  EXPECT_TRUE(m.strip_path_prefix);
  ASSERT_EQ(m.endpoints.size(), 2u);
  EXPECT_EQ(m.endpoints[0], (EndpointConfig{"cart-1.internal:8080", 3}));
  EXPECT_EQ(m.endpoints[1], (EndpointConfig{"10.0.0.7:80", 1}));  // shorthand
  EXPECT_EQ(c.manifests[1].project, "*");
  EXPECT_EQ(c.manifests[1].environment, "*");  // default
  EXPECT_EQ(c.manifests[1].balancing, "round_robin");
  EXPECT_FALSE(c.manifests[1].strip_path_prefix);
}

TEST(ConfigLoader, OmittedKeysKeepTheDocumentedDefaults) {
  const auto r = load(kMinimal);
  ASSERT_TRUE(r.config) << ::testing::PrintToString(errors_of(r));
  Config expected;
  expected.source = "config.yaml";
  ListenerConfig listener;
  listener.address = "127.0.0.1:0";
  expected.listeners.push_back(listener);
  EXPECT_EQ(*r.config, expected);
  EXPECT_EQ(r.config->listeners[0].name, "main");
  EXPECT_EQ(r.config->timeouts.client_header, 10s);
  EXPECT_EQ(r.config->limits.max_header_bytes, 32768u);
}

TEST(ConfigLoader, EmptySectionsAreDefaults) {
  const auto r = load(std::string(kMinimal) + "server:\nlimits:\ntimeouts:\nlogging:\n  access_log:\nmanifests:\n");
  ASSERT_TRUE(r.config) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.config->server, ServerConfig{});
  EXPECT_EQ(r.config->logging, LoggingConfig{});
  EXPECT_TRUE(r.config->manifests.empty());
}

TEST(ConfigLoader, ShippedConfigLoads) {
  const auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "config" / "frontdoor.yaml";
  const auto r = load_config_file(path.lexically_normal().string());
  ASSERT_TRUE(r.config) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.config->listeners.size(), 1u);
  EXPECT_EQ(r.config->limits.max_request_line_bytes, 8192u);
  ASSERT_EQ(r.config->manifests.size(), 2u);
  EXPECT_TRUE(r.config->manifests[1].strip_path_prefix);
}

TEST(ConfigLoader, ReadsAFile) {
  TempDir dir;
  const auto path = dir.write("frontdoor.yaml", std::string(kMinimal));
  const auto r = load_config_file(path);
  ASSERT_TRUE(r.config) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.config->source, path);
}

// --------------------------------------------------------------------------------------------
// Errors: each with its exact position and message
// --------------------------------------------------------------------------------------------

TEST(ConfigLoader, BadDurationPointsAtTheValue) {
  const auto r = load(std::string(kMinimal) + "timeouts:\n  client_header: 10x\n");
  EXPECT_FALSE(r.config);
  EXPECT_EQ(errors_of(r),
            Strings{"config.yaml:4:18: timeouts.client_header: \"10x\" is not a duration (expected e.g. 250ms, 10s, 2m; at most 87600h)"});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "config.yaml");
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].column, 18);
}

TEST(ConfigLoader, ControlBytesInAStringAreRefused) {
  // "\0" in a double-quoted scalar is a NUL: the address must not load as "[::]".
  const auto r = load("listeners:\n  - address: \"[::\\0x]:8443\"\n");
  EXPECT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_NE(r.errors[0].message.find("listeners[0].address: \"[::\\x00x]:8443\" must not contain control characters"),
            std::string::npos)
      << r.errors[0].message;
  const auto tab = load(std::string(kMinimal) + "routing:\n  environment_header: \"X-\\tEnv\"\n");
  EXPECT_FALSE(tab.config);
  EXPECT_NE(errors_of(tab).front().find("must not contain control characters"), std::string::npos);
  // "\xe9" is U+00E9, which the YAML reader stores as UTF-8: text, not a stray byte.
  const auto accent = load("listeners:\n  - address: 127.0.0.1:0\n    name: \"caf\\xe9\"\n");
  ASSERT_TRUE(accent.config) << ::testing::PrintToString(errors_of(accent));
  EXPECT_EQ(accent.config->listeners[0].name, "caf\xc3\xa9");
}

TEST(ConfigLoader, AdminSection) {
  const auto ok = load(std::string(kMinimal) + "admin:\n  address: 0.0.0.0:9901\n  rate_window: 1m\n");
  ASSERT_TRUE(ok.config) << ::testing::PrintToString(errors_of(ok));
  EXPECT_EQ(ok.config->admin.address, "0.0.0.0:9901");
  EXPECT_EQ(ok.config->admin.rate_window, std::chrono::minutes(1));
  EXPECT_TRUE(load(kMinimal).config->admin.address.empty()) << "off unless the section says where";
  const auto bad = load(std::string(kMinimal) + "admin:\n  address: nowhere\n  rate_window: 10ms\n");
  EXPECT_EQ(errors_of(bad),
            (Strings{"config.yaml:4:12: admin.address: \"nowhere\" is not host:port (expected e.g. 0.0.0.0:9901)",
                     "config.yaml:5:16: admin.rate_window: 10ms is out of range (expected 1s..1h)"}));
}

TEST(ConfigLoader, ListenerEnvironmentsAreNamesOrAStar) {
  const auto ok = load("listeners:\n  - address: 127.0.0.1:0\n    environments: [staging, \"*\"]\n");
  ASSERT_TRUE(ok.config) << ::testing::PrintToString(errors_of(ok));
  EXPECT_EQ(ok.config->listeners[0].environments, (std::vector<std::string>{"staging", "*"}));
  const auto bad = load("listeners:\n  - address: 127.0.0.1:0\n    environments: [\"st/aging\"]\n");
  EXPECT_FALSE(bad.config);
  EXPECT_NE(errors_of(bad).front().find("listeners[0].environments[0]"), std::string::npos);
}

TEST(ConfigLoader, TwoListenersOnOnePortAreRefused) {
  // `check` passed them and `run` failed to bind the second ("Address already in use").
  const auto same = load("listeners:\n  - {name: a, address: \"127.0.0.1:8080\"}\n"
                         "  - {name: b, address: \"0.0.0.0:8080\"}\nadmin: {address: \"[::]:8080\"}\n");
  EXPECT_FALSE(same.config);
  EXPECT_EQ(errors_of(same),
            (Strings{"config.yaml:3:24: listeners[1].address: \"0.0.0.0:8080\" takes the port of listeners[0] (a) "
                     "(two sockets cannot listen on one port)",
                     "config.yaml:4:18: admin.address: \"[::]:8080\" takes the port of listeners[0] (a) "
                     "(two sockets cannot listen on one port)"}));
  // Other ports, any port (0), other families of a specific address: apart.
  const auto apart = load("listeners:\n  - {name: a, address: \"127.0.0.1:8080\"}\n"
                          "  - {name: b, address: \"[::1]:8080\"}\n  - {name: c, address: \"127.0.0.1:0\"}\n"
                          "  - {name: d, address: \"127.0.0.1:0\"}\nadmin: {address: \"127.0.0.1:9901\"}\n");
  EXPECT_TRUE(apart.config) << ::testing::PrintToString(errors_of(apart));
}

TEST(ConfigLoader, UnknownKeyPointsAtTheKey) {
  const auto r = load(R"(listeners:
- address: 127.0.0.1:0
  listner: x
bogus: 1
)");
  EXPECT_FALSE(r.config);
  EXPECT_EQ(errors_of(r),
            (Strings{"config.yaml:3:3: unknown key \"listner\" in listeners[0] (expected one of: name, address, "
                     "default_environment, environments, proxy_protocol, trusted_proxies, tls)",
                     "config.yaml:4:1: unknown key \"bogus\" at the top level (expected one of: server, listeners, "
                     "limits, timeouts, upstream_pool, routing, resilience, rate_limits, rate_limit_headers, redis, postgres, "
              "manifest_cache, load_shedding, logging, admin, manifests)"}));
}

TEST(ConfigLoader, UnknownKeysInEverySection) {
  const auto r = load(std::string(kMinimal) + R"(server: {threads: 2}
limits: {max_headers: 3}
timeouts: {connect: 1s}
upstream_pool: {size: 1}
routing: {header: X}
logging: {access_log: {path: x}}
manifests:
  - project: p
    module: m
    endpoints: [{address: a:1, wieght: 2}]
    typo: 1
)");
  EXPECT_EQ(errors_of(r),
            (Strings{
                "config.yaml:3:10: unknown key \"threads\" in server (expected one of: workers, drain_timeout, "
                "drain_delay, max_connections, max_connections_per_client, certificate_check_interval)",
                "config.yaml:4:10: unknown key \"max_headers\" in limits (expected one of: max_request_line_bytes, "
                "max_header_bytes, max_header_count, max_body_bytes)",
                "config.yaml:5:12: unknown key \"connect\" in timeouts (expected one of: client_header, client_idle, "
                "client_body, upstream_connect, upstream_response, request_total, tunnel_idle)",
                "config.yaml:6:17: unknown key \"size\" in upstream_pool (expected one of: max_idle_per_endpoint, "
                "idle_timeout, resolve_interval)",
                "config.yaml:7:11: unknown key \"header\" in routing (expected one of: environment_header)",
                "config.yaml:8:24: unknown key \"path\" in logging.access_log (expected one of: destination, format)",
                "config.yaml:12:32: unknown key \"wieght\" in manifests[0].endpoints[0] (expected one of: address, "
                "weight, priority)",
                "config.yaml:13:5: unknown key \"typo\" in manifests[0] (expected one of: project, module, "
                "environment, endpoints, balancing, strip_path_prefix, hash_key, sticky_cookie, priority, max_requests, max_active_retries, rate_limits, resilience, max_connections, max_pending, upgrades)",
            }));
}

TEST(ConfigLoader, ReportsEveryErrorAtOnceInFileOrder) {
  // Parse errors and semantic errors together, each once, sorted by position.
  const auto r = load(R"(server:
  drain_timeout: 10x
  workers: 2000
listeners:
  - name: main
    address: 127.0.0.1:0
    bogus_key: 1
  - name: main
    address: nowhere
limits:
  max_header_count: lots
logging:
  level: verbose
manifests:
  - project: p
    module: m
    balancing: random
    endpoints:
      - address: 10.0.0.1:0
        weight: 0
)");
  EXPECT_FALSE(r.config);
  EXPECT_EQ(errors_of(r),
            (Strings{
                "config.yaml:2:18: server.drain_timeout: \"10x\" is not a duration (expected e.g. 250ms, 10s, 2m; at most 87600h)",
                "config.yaml:3:12: server.workers: 2000 is too many (expected 0..1024; 0 = one per core)",
                "config.yaml:7:5: unknown key \"bogus_key\" in listeners[0] (expected one of: name, address, "
                "default_environment, environments, proxy_protocol, trusted_proxies, tls)",
                "config.yaml:8:11: listeners[1].name: \"main\" is already the name of listeners[0] (listener names "
                "must be unique)",
                "config.yaml:9:14: listeners[1].address: \"nowhere\" is not host:port (expected e.g. 0.0.0.0:8080 or "
                "[::]:8080, port 0..65535)",
                "config.yaml:11:21: limits.max_header_count: \"lots\" is not a whole number (expected at least 1)",
                "config.yaml:13:10: logging.level: \"verbose\" is not a log level (expected one of: trace, debug, "
                "info, warn, error, critical, off)",
                "config.yaml:17:16: manifests[0].balancing: \"random\" is not a balancing policy (expected one of: "
                "round_robin, weighted, least_connections, latency_aware, consistent_hash, sticky)",
                "config.yaml:19:18: manifests[0].endpoints[0].address: \"10.0.0.1:0\" is not host:port (expected "
                "e.g. 10.0.0.5:8080, port 1..65535)",
                "config.yaml:20:17: manifests[0].endpoints[0].weight: 0 is out of range (expected 1..10000)",
            }));
}

TEST(ConfigLoader, WrongTypes) {
  const auto r = load(R"(server:
  workers: "4"
  max_connections: [1]
listeners:
  - name: {a: b}
    address: 127.0.0.1:0
    tls: yes
limits: 12
timeouts:
  client_idle: {}
logging:
  access_log:
    format: xml
manifests:
  - project: p
    module: m
    strip_path_prefix: maybe
    endpoints: 10.0.0.1:80
  - "just a string"
)");
  EXPECT_EQ(errors_of(r),
            (Strings{
                "config.yaml:2:12: server.workers: expected an integer, found the quoted string \"4\" (write it "
                "without quotes)",
                "config.yaml:3:20: server.max_connections: expected an integer, found a list",
                "config.yaml:5:11: listeners[0].name: expected a string, found a mapping",
                "config.yaml:7:10: listeners[0].tls: expected a mapping with keys certificate_file, "
                "private_key_file, found \"yes\"",
                "config.yaml:8:9: limits: expected a mapping with keys max_request_line_bytes, max_header_bytes, "
                "max_header_count, max_body_bytes, found \"12\"",
                "config.yaml:10:16: timeouts.client_idle: expected a duration, found a mapping",
                "config.yaml:13:13: logging.access_log.format: \"xml\" is not an access log format (expected text "
                "or json)",
                "config.yaml:17:24: manifests[0].strip_path_prefix: \"maybe\" is not a boolean (expected true or "
                "false)",
                "config.yaml:18:16: manifests[0].endpoints: expected a list of endpoints, found \"10.0.0.1:80\"",
                "config.yaml:19:5: manifests[1]: expected a mapping with keys project, module, environment, "
                "endpoints, balancing, strip_path_prefix, hash_key, sticky_cookie, priority, max_requests, max_active_retries, rate_limits, resilience, max_connections, max_pending, upgrades, found the quoted string \"just a string\"",
            }));
}

TEST(ConfigLoader, EmptyValuePointsAtItsKey) {
  const auto r = load(R"(listeners:
  - name:
    address: 127.0.0.1:0
)");
  EXPECT_EQ(errors_of(r), Strings{"config.yaml:2:5: listeners[0].name: expected a string, found nothing"});
}

TEST(ConfigLoader, QuotedBooleanIsAString) {
  const auto r = load(std::string(kMinimal) + "manifests:\n  - {project: p, module: m, endpoints: [a:1], "
                                              "strip_path_prefix: \"true\"}\n");
  EXPECT_EQ(errors_of(r), Strings{"config.yaml:4:66: manifests[0].strip_path_prefix: expected true or false, found "
                                  "the quoted string \"true\" (write it without quotes)"});
}

TEST(ConfigLoader, DuplicateKey) {
  const auto r = load(std::string(kMinimal) + "server:\n  workers: 1\n  workers: 2\n");
  EXPECT_EQ(errors_of(r), Strings{"config.yaml:5:3: duplicate key \"workers\" in server (each key may appear once)"});
}

TEST(ConfigLoader, SyntaxErrorIsOneErrorWithItsPosition) {
  const auto r = load("listeners:\n  - name: [a, b\n    address: x\n");
  EXPECT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(errors_of(r));
  // yaml-cpp stops where the unclosed flow list can no longer continue: the ':' after "address".
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].column, 12);
  EXPECT_EQ(r.errors[0].to_string(), "config.yaml:3:12: invalid YAML: end of sequence flow not found");
}

TEST(ConfigLoader, SyntaxErrorBadIndentation) {
  const auto r = load("server:\n  workers: 1\n   drain_timeout: 1s\n");
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].message.rfind("invalid YAML: ", 0), 0u) << r.errors[0].message;
}

TEST(ConfigLoader, UndefinedAlias) {
  const auto r = load("listeners: *nothing\n");
  EXPECT_EQ(errors_of(r), Strings{"config.yaml:1:12: invalid YAML: the referenced anchor is not defined"});
}

// One anchored manifest with `endpoints` endpoints, then `uses` lines of `- *m`: the loader walks
// the anchored node again at every use.
std::string alias_bomb(std::size_t endpoints, std::size_t uses) {
  std::string yaml = std::string(kMinimal) + "manifests:\n  - &m {project: p, module: m, endpoints: [";
  for (std::size_t i = 0; i < endpoints; ++i) yaml += (i ? ", " : "") + std::string("127.0.0.1:80");
  yaml += "]}\n";
  for (std::size_t i = 0; i < uses; ++i) yaml += "  - *m\n";
  return yaml;
}

TEST(ConfigLoader, AliasesAreExpandedWithinTheBudget) {
  const auto r = load(alias_bomb(3, 2));  // 3 manifests of 3 endpoints (then refused as duplicates)
  ASSERT_EQ(r.errors.size(), 2u) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[1].message.rfind("manifests[2]: project/module/environment p/m/", 0), 0u) << r.errors[1].message;
}

TEST(ConfigLoader, AliasesExpandingPastTheBudgetAreRefusedBeforeTheWalk) {
  // ~40 KB of text that expands to just over kMaxConfigValues values.
  const std::size_t endpoints = 1000, uses = kMaxConfigValues / endpoints;
  const std::string yaml = alias_bomb(endpoints, uses);
  ASSERT_LT(yaml.size(), 64u * 1024);
  const auto r = load(yaml);
  EXPECT_FALSE(r.config);
  // One error, in the anchored node where the count passed the budget; nothing else is judged.
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].message,
            "the configuration holds more than 1000000 values once its aliases are expanded (each use of an "
            "alias, *name, counts every value of the node it names); nothing was loaded");
}

TEST(ConfigLoader, ManifestFilesHaveTheSameBudget) {
  const std::size_t endpoints = 1000, uses = kMaxConfigValues / endpoints;
  std::string yaml = alias_bomb(endpoints, uses);
  yaml.erase(0, kMinimal.size());
  const auto base = load(kMinimal);
  ASSERT_TRUE(base.config);
  const auto r = load_manifests_string(yaml, "put.yaml", *base.config, ManifestsForm::list);
  EXPECT_TRUE(r.manifests.empty());
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(errors_of(r.errors));
  EXPECT_EQ(r.errors[0].message.rfind("the document holds more than 1000000 values once its aliases are expanded", 0),
            0u)
      << r.errors[0].message;
}

TEST(ConfigLoader, TextPastTheSizeLimitIsNotParsed) {
  std::string yaml = std::string(kMinimal);
  yaml.resize(kMaxConfigBytes + 1, '#');  // one long comment
  EXPECT_EQ(errors_of(load(yaml)),
            Strings{"config.yaml: is 16777217 bytes, more than the 16MiB a configuration may be"});
  TempDir dir;
  const auto path = dir.write("big.yaml", yaml);
  EXPECT_EQ(errors_of(load_config_file(path)),
            Strings{path + ": is 16777217 bytes, more than the 16MiB a configuration may be"});
  yaml.resize(kMaxConfigBytes);
  const auto at_the_limit = load(yaml);
  EXPECT_TRUE(at_the_limit.config) << ::testing::PrintToString(errors_of(at_the_limit));
  const auto base = load(kMinimal);
  ASSERT_TRUE(base.config);
  yaml.resize(kMaxConfigBytes + 1, '#');
  EXPECT_EQ(errors_of(load_manifests_string(yaml, "put.yaml", *base.config, ManifestsForm::list).errors),
            Strings{"put.yaml: is 16777217 bytes, more than the 16MiB manifests may be"});
}

TEST(ConfigLoader, EmptyDocument) {
  EXPECT_EQ(errors_of(load("")),
            Strings{"config.yaml: the configuration is empty (expected at least a listeners: section)"});
  EXPECT_EQ(errors_of(load("# only a comment\n")),
            Strings{"config.yaml: the configuration is empty (expected at least a listeners: section)"});
}

TEST(ConfigLoader, DocumentThatIsNotAMapping) {
  EXPECT_EQ(errors_of(load("- a\n- b\n")),
            Strings{"config.yaml:1:1: the configuration must be a mapping of sections (server, listeners, limits, "
                    "timeouts, upstream_pool, routing, resilience, rate_limits, rate_limit_headers, redis, postgres, "
              "manifest_cache, load_shedding, logging, admin, manifests), found a list"});
}

TEST(ConfigLoader, ContentAfterTheDocumentIsAnError) {
  EXPECT_EQ(errors_of(load(std::string(kMinimal) + "---\nserver: {}\n")),
            Strings{"config.yaml:4:1: unexpected content after the configuration (expected a single YAML document)"});
  // yaml-cpp reads these as a second document; 0.7 would even return the trailing ',' forever.
  EXPECT_EQ(errors_of(load("{listeners: [{address: \"127.0.0.1:0\"}]},")),
            Strings{"config.yaml:1:40: unexpected content after the configuration (expected a single YAML document)"});
  EXPECT_EQ(errors_of(load("{listeners: [{address: \"127.0.0.1:0\"}]}\nserver: {}\n")),
            Strings{"config.yaml:2:1: unexpected content after the configuration (expected a single YAML document)"});
  EXPECT_EQ(errors_of(load(std::string(kMinimal) + "---\n[a\n")),
            Strings{"config.yaml:5:1: invalid YAML: end of sequence flow not found"});
  EXPECT_TRUE(load(std::string(kMinimal) + "...\n").config);
  EXPECT_TRUE(load("---\n" + std::string(kMinimal)).config);
}

TEST(ConfigLoader, MissingListeners) {
  EXPECT_EQ(errors_of(load("server: {workers: 1}\n")),
            Strings{"config.yaml: listeners: at least one listener is required"});
  EXPECT_EQ(errors_of(load("listeners: []\n")),
            Strings{"config.yaml:1:12: listeners: at least one listener is required"});
}

TEST(ConfigLoader, BadListItemKeepsTheIndexesOfTheOthers) {
  const auto r = load(R"(listeners:
  - 5
  - name: b
    address: bad
)");
  EXPECT_EQ(errors_of(r),
            (Strings{"config.yaml:2:5: listeners[0]: expected a mapping with keys name, address, default_environment, "
                     "environments, proxy_protocol, trusted_proxies, tls, found \"5\"",
                     "config.yaml:4:14: listeners[1].address: \"bad\" is not host:port (expected e.g. 0.0.0.0:8080 or "
                     "[::]:8080, port 0..65535)"}));
}

TEST(ConfigLoader, AValueThatFailedToParseSilencesTheChecksOnItAndBelowItOnly) {
  const auto r = load(R"(listeners:
  - name: a
    address: [127.0.0.1:0]
  - 5
  - {name: c, address: 127.0.0.1:0, tls: 7}
  - {name: d, address: 127.0.0.1:0}
  - {name: e, address: 127.0.0.1:0}
  - {name: f, address: 127.0.0.1:0}
  - {name: g, address: 127.0.0.1:0}
  - {name: h, address: 127.0.0.1:0}
  - {name: i, address: 127.0.0.1:0}
  - {name: j, address: 127.0.0.1:0}
  - {name: k, address: nowhere}
  - {name: l, address: 127.0.0.1:0, tls: {certificate_file: [x]}}
)");
  // Not: listeners[0].address is not host:port, listeners[1].name must not be empty,
  // listeners[2].tls.certificate_file is required, listeners[12].tls.certificate_file cannot be read.
  // Still: listeners[10].address (listeners[1] failed, not its prefix "listeners[10]"), and
  // listeners[12].tls.private_key_file (its sibling failed, not it).
  EXPECT_EQ(errors_of(r),
            (Strings{
                "config.yaml:3:14: listeners[0].address: expected a string, found a list",
                "config.yaml:4:5: listeners[1]: expected a mapping with keys name, address, default_environment, "
                "environments, proxy_protocol, trusted_proxies, tls, found \"5\"",
                "config.yaml:5:42: listeners[2].tls: expected a mapping with keys certificate_file, private_key_file, "
                "found \"7\"",
                "config.yaml:13:24: listeners[10].address: \"nowhere\" is not host:port (expected e.g. 0.0.0.0:8080 or "
                "[::]:8080, port 0..65535)",
                "config.yaml:14:42: listeners[11].tls.private_key_file: is required (a PEM private key file)",
                "config.yaml:14:61: listeners[11].tls.certificate_file: expected a string, found a list",
            }));
}

TEST(ConfigLoader, ReportsTheFirstHundredErrorsAndHowManyMore) {
  std::string yaml = std::string(kMinimal) + "manifests:\n";
  for (int i = 0; i < 250; ++i) yaml += "  - {project: p" + std::to_string(i) + ", module: m, endpoints: [nowhere]}\n";
  const auto r = load(yaml);
  ASSERT_EQ(r.errors.size(), kMaxReportedErrors + 1);
  EXPECT_EQ(r.errors[0].to_string(),
            "config.yaml:4:42: manifests[0].endpoints[0].address: \"nowhere\" is not host:port (expected e.g. "
            "10.0.0.5:8080, port 1..65535)");
  EXPECT_EQ(r.errors[99].line, 103);  // in file order
  EXPECT_EQ(r.errors[100].to_string(), "config.yaml: and 150 more errors (only the first 100 are shown)");
  // At the cap exactly: no "more" line.
  yaml.resize(yaml.find("  - {project: p100,"));
  EXPECT_EQ(load(yaml).errors.size(), kMaxReportedErrors);
}

TEST(ConfigLoader, SemanticErrorsCarryThePositionOfTheElement) {
  const auto r = load(R"(listeners:
  - name: ""
    address: 127.0.0.1:0
    default_environment: "*"
limits:
  max_request_line_bytes: 32
  max_header_bytes: 16
timeouts:
  client_header: 0s
  request_total: 0
upstream_pool:
  idle_timeout: 0
routing:
  environment_header: "X Env"
logging:
  access_log:
    destination: ""
manifests:
  - project: a/b
    module: ""
    endpoints: []
  - {project: p, module: m, endpoints: [x:1]}
  - {project: p, module: m, environment: "*", endpoints: [x:2]}
)");
  EXPECT_EQ(errors_of(r),
            (Strings{
                "config.yaml:2:11: listeners[0].name: must not be empty",
                "config.yaml:4:26: listeners[0].default_environment: \"*\" is not an environment name (expected "
                "[A-Za-z0-9._-]+)",
                "config.yaml:6:27: limits.max_request_line_bytes: 32 is too small (expected at least 64 bytes)",
                "config.yaml:7:21: limits.max_header_bytes: 16 is smaller than limits.max_request_line_bytes (32); "
                "the head includes the request line",
                "config.yaml:9:18: timeouts.client_header: must be greater than 0",
                "config.yaml:12:17: upstream_pool.idle_timeout: must be greater than 0 (use max_idle_per_endpoint: 0 "
                "to disable the pool)",
                "config.yaml:14:23: routing.environment_header: \"X Env\" is not a header name (expected e.g. "
                "X-Environment)",
                "config.yaml:17:18: logging.access_log.destination: must not be empty (expected off, stdout, stderr "
                "or a file path)",
                "config.yaml:19:14: manifests[0].project: \"a/b\" is not valid (expected [A-Za-z0-9._-]+ or \"*\")",
                "config.yaml:20:13: manifests[0].module: is required (expected [A-Za-z0-9._-]+ or \"*\")",
                "config.yaml:21:16: manifests[0].endpoints: at least one endpoint is required",
                "config.yaml:23:5: manifests[2]: project/module/environment p/m/* is already defined by manifests[1]",
            }));
}

TEST(ConfigLoader, TlsFilesMustExistAndBeReadable) {
  TempDir dir;
  const auto cert = dir.write("cert.pem", "-----BEGIN CERTIFICATE-----\n");
  const auto key = dir.write("key.pem", "-----BEGIN PRIVATE KEY-----\n");
  const std::string good = "listeners:\n  - address: 127.0.0.1:0\n    tls:\n      certificate_file: " + cert +
                           "\n      private_key_file: " + key + "\n";
  const auto ok = load(good);
  ASSERT_TRUE(ok.config) << ::testing::PrintToString(errors_of(ok));
  ASSERT_TRUE(ok.config->listeners[0].tls);
  EXPECT_EQ(ok.config->listeners[0].tls->certificate_file, cert);
  EXPECT_EQ(ok.config->listeners[0].tls->private_key_file, key);

  const std::string missing = dir.path() + "/missing.pem";
  const auto bad = load("listeners:\n  - address: 127.0.0.1:0\n    tls:\n      certificate_file: " + missing +
                        "\n      private_key_file: " + dir.path() + "\n");
  EXPECT_EQ(errors_of(bad),
            (Strings{"config.yaml:4:25: listeners[0].tls.certificate_file: cannot read \"" + missing +
                         "\": No such file or directory",
                     "config.yaml:5:25: listeners[0].tls.private_key_file: \"" + dir.path() +
                         "\" is not a regular file (expected a PEM file)"}));

  const auto incomplete = load("listeners:\n  - address: 127.0.0.1:0\n    tls: {certificate_file: " + cert + "}\n");
  EXPECT_EQ(errors_of(incomplete),
            Strings{"config.yaml:3:10: listeners[0].tls.private_key_file: is required (a PEM private key file)"});
}

TEST(ConfigLoader, MissingFileNamesTheFile) {
  const auto r = load_config_file("/nonexistent/frontdoor.yaml");
  EXPECT_FALSE(r.config);
  EXPECT_EQ(errors_of(r),
            Strings{"/nonexistent/frontdoor.yaml: cannot open the configuration file: No such file or directory"});
}

TEST(ConfigLoader, DirectoryIsNotAFile) {
  TempDir dir;
  EXPECT_EQ(errors_of(load_config_file(dir.path())),
            Strings{dir.path() + ": is a directory (expected a YAML configuration file)"});
}

TEST(ConfigLoader, AFifoIsRefusedNotWaitedOn) {
  // Opening a FIFO blocks until a writer comes: `check` hung, and a reload hung the control thread.
  TempDir dir;
  const auto path = dir.path() + "/fifo.yaml";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_EQ(errors_of(load_config_file(path)),
            Strings{path + ": is not a regular file (a FIFO, a device or a socket): expected a YAML configuration file"});
}

TEST(ConfigLoader, ErrorInAFileCarriesItsName) {
  TempDir dir;
  const auto path = dir.write("bad.yaml", std::string(kMinimal) + "server:\n  drain_timeout: 10x\n");
  EXPECT_EQ(errors_of(load_config_file(path)),
            Strings{path + ":4:18: server.drain_timeout: \"10x\" is not a duration (expected e.g. 250ms, 10s, 2m; at most 87600h)"});
}

TEST(ConfigLoader, NeverThrowsOnOddInput) {
  const std::string inputs[] = {
      std::string("\0\0\0\0", 4), "\xff\xfe\x00", "[[[[[[[[[[[[[[[[[[", std::string(5000, '['), "{a: &x b, c: *x}",
      "listeners: &l [*l]", "? [a]\n: b\n", "listeners: [{address: !!binary aGVsbG8=}]", "\t\tfoo: bar",
      "listeners:\n  - address: \"\\xff:80\"\n", "%YAML 9.9\n---\na: 1\n",
  };
  for (const auto& input : inputs) {
    LoadResult r;
    EXPECT_NO_THROW(r = load(input));
    EXPECT_FALSE(r.config) << input;
    EXPECT_FALSE(r.errors.empty()) << input;
  }
}

TEST(ConfigLoader, ControlCharactersInNamesAreRejected) {
  const auto r = load("listeners:\n  - name: \"a\\tb\"\n    address: 127.0.0.1:0\n");
  EXPECT_EQ(errors_of(r), Strings{"config.yaml:2:11: listeners[0].name: \"a\\x09b\" must not contain control characters"});
}

// --------------------------------------------------------------------------------------------
// Durations and sizes
// --------------------------------------------------------------------------------------------

TEST(ConfigScalars, ParseDuration) {
  const std::pair<const char*, Duration> good[] = {
      {"0", 0ms},     {"0s", 0ms},      {"0ms", 0ms},      {"250ms", 250ms}, {"10s", 10s},
      {"2m", 120s},   {"1h", 3600s},    {"007s", 7s},      {"1000ms", 1s},   {"36h", 36h},
      {"87600h", kMaxDuration}, {"315360000000ms", kMaxDuration},
  };
  for (const auto& [text, expected] : good) {
    Duration d{-1};
    EXPECT_TRUE(parse_duration(text, d)) << text;
    EXPECT_EQ(d, expected) << text;
  }
  const char* bad[] = {"",    "10",  "1",     "s",    "-1s",  "+1s",  "1.5s", "10 s", " 10s", "10s ",
                       "10S", "1d",  "1sec",  "ms",   "10x",  "1h1m", "0x10s", "9223372036854775808ms",
                       "2562047788016h",  // > INT64_MAX ms
                       "87601h", "315360000001ms",
                       "99999999h",  // a "never" that would wrap every deadline into the past
                       "99999999999999999999s"};
  for (const char* text : bad) {
    Duration d{42};
    EXPECT_FALSE(parse_duration(text, d)) << text;
    EXPECT_EQ(d, Duration{42}) << "output changed on failure: " << text;
  }
}

// An echoed value is cut at 64 bytes: never inside a character, or a refused reload's JSON
// (POST /reload, /status.json) would hold a lone byte that is not UTF-8.
TEST(ConfigScalars, EchoedValuesAreCutOnACharacterBoundary) {
  const std::string value = std::string(63, 'x') + "\xc3\xa9";
  auto loaded = load_config_string("timeouts:\n  client_header: \"" + value + "\"\n", "c.yaml");
  ASSERT_FALSE(loaded.config);
  std::string message;
  for (const auto& e : loaded.errors)
    if (e.message.find("client_header") != std::string::npos) message = e.to_string();
  ASSERT_FALSE(message.empty());
  EXPECT_NE(message.find(std::string(63, 'x') + "...\""), std::string::npos) << message;
  for (std::size_t i = 0; i < message.size(); i += std::max<std::size_t>(core::utf8_sequence(message, i), 1))
    ASSERT_NE(core::utf8_sequence(message, i), 0u) << "not UTF-8 at byte " << i << ": " << message;
}

TEST(ConfigScalars, ParseSize) {
  const std::pair<const char*, std::uint64_t> good[] = {
      {"0", 0},
      {"8192", 8192},
      {"8KiB", 8192},
      {"8k", 8192},
      {"8K", 8192},
      {"1MiB", 1u << 20},
      {"1m", 1u << 20},
      {"1M", 1u << 20},
      {"1GiB", 1u << 30},
      {"1g", 1u << 30},
      {"1G", 1u << 30},
      {"0KiB", 0},
      {"100B", 100},
      {"18446744073709551615", UINT64_MAX},
      {"17179869183GiB", 17179869183ull << 30},
  };
  for (const auto& [text, expected] : good) {
    std::uint64_t v = 1;
    EXPECT_TRUE(parse_size(text, v)) << text;
    EXPECT_EQ(v, expected) << text;
  }
  const char* bad[] = {"",     "k",    "KiB", "-1",   "1KB",  "1kb", "1kiB", "1 KiB", "1.5MiB", "1T",
                       "1TiB", "0x10", "1e3", "18446744073709551616", "17179869184GiB", "8KiB "};
  for (const char* text : bad) {
    std::uint64_t v = 42;
    EXPECT_FALSE(parse_size(text, v)) << text;
    EXPECT_EQ(v, 42u) << text;
  }
}

TEST(ConfigScalars, FormatDurationPicksTheLargestExactUnit) {
  EXPECT_EQ(format_duration(0ms), "0s");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(30s), "30s");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(120s), "2m");
  EXPECT_EQ(format_duration(60min), "1h");
  EXPECT_EQ(format_duration(90min), "90m");
  EXPECT_EQ(format_duration(48h), "48h");
  for (Duration d : {Duration(0ms), Duration(1ms), Duration(999ms), Duration(1001ms), Duration(61s), Duration(3601s), Duration(25h)}) {
    Duration back{-1};
    ASSERT_TRUE(parse_duration(format_duration(d), back)) << format_duration(d);
    EXPECT_EQ(back, d);
  }
}

TEST(ConfigScalars, FormatSize) {
  EXPECT_EQ(format_size(0), "0");
  EXPECT_EQ(format_size(100), "100");
  EXPECT_EQ(format_size(8192), "8KiB");
  EXPECT_EQ(format_size(1536), "1536");
  EXPECT_EQ(format_size(1u << 20), "1MiB");
  EXPECT_EQ(format_size(3ull << 30), "3GiB");
  EXPECT_EQ(format_size(1025ull << 20), "1025MiB");
  for (std::uint64_t v : {std::uint64_t{1}, std::uint64_t{4096}, std::uint64_t{5} << 40, UINT64_MAX}) {
    std::uint64_t back = 0;
    ASSERT_TRUE(parse_size(format_size(v), back)) << format_size(v);
    EXPECT_EQ(back, v);
  }
}

TEST(ConfigScalars, KeyParts) {
  EXPECT_TRUE(is_key_part("*"));
  EXPECT_TRUE(is_key_part("shop-v2.cart_1"));
  EXPECT_FALSE(is_key_part(""));
  EXPECT_FALSE(is_key_part("**"));
  EXPECT_FALSE(is_key_part("a*"));
  EXPECT_FALSE(is_key_part("a/b"));
  EXPECT_FALSE(is_key_part("a b"));
  EXPECT_TRUE(is_key_part(std::string(128, 'a')));
  EXPECT_FALSE(is_key_part(std::string(129, 'a')));
}

TEST(ConfigLoader, TheYamlParsersMessageIsPrintedWithoutRawControlBytes) {
  // It quotes the byte it choked on: an escape sequence went to the operator's terminal as is.
  const auto r = load("server: {workers: \"\\\x1b]0;pwned\a\"}\n");
  ASSERT_EQ(errors_of(r).size(), 1u);
  EXPECT_EQ(errors_of(r).front(), "config.yaml:1:22: invalid YAML: unknown escape character: \\x1b");
}

TEST(ConfigLoader, HealthChecksCannotBeALoadOfTheirOwn) {
  // 1 ms was taken: about 600 checks a second to one endpoint from one replica.
  const auto r = load(std::string(kMinimal) + "resilience:\n  health_check: {path: /hz, interval: 1ms, timeout: 1ms}\n");
  EXPECT_EQ(errors_of(r), (Strings{"config.yaml:4:39: resilience.health_check.interval: 1ms is too short (expected at least 100ms)",
                                   "config.yaml:4:53: resilience.health_check.timeout: 1ms is too short (expected at least 10ms)"}));
}

TEST(ConfigScalars, SizeLimitsOfNarrowFields) {
  const auto r = load(std::string(kMinimal) + "limits:\n  max_header_bytes: 4GiB\n  max_body_bytes: 4GiB\n");
  EXPECT_EQ(errors_of(r), Strings{"config.yaml:4:21: limits.max_header_bytes: \"4GiB\" is too large (at most "
                                  "4294967295 bytes)"});
  const auto big = load(std::string(kMinimal) + "server:\n  max_connections: 4294967296\n");
  EXPECT_EQ(errors_of(big),
            Strings{"config.yaml:4:20: server.max_connections: 4294967296 is too large (at most 4294967295; expected 0 "
                    "(from the file descriptor limit) or more)"});
}

// --------------------------------------------------------------------------------------------
// to_yaml
// --------------------------------------------------------------------------------------------

Config full_config(const std::string& cert, const std::string& key) {
  Config c;
  c.source = "round-trip";
  c.server = {8, 1500ms, 250ms, 123};
  c.admin = {"127.0.0.1:9901", 10s, "FD_ADMIN_TOKEN", {}};
  ListenerConfig a;
  a.name = "pub\"lic";
  a.address = "[::]:443";
  a.default_environment = "prod-eu.1";
  a.tls = TlsConfig{cert, key};
  ListenerConfig b;
  b.name = "caf\xc3\xa9 \xf0\x9f\x98\x80 #1: - * & ! | > ' %";
  b.address = "localhost:0";
  ListenerConfig tilde;
  tilde.name = "~";
  tilde.address = "127.0.0.1:1";
  c.listeners = {a, b, tilde};
  c.limits = {100, 5000, 7, (std::uint64_t{3} << 30) + 1};
  c.timeouts = {1ms, 61s, 2h, 999ms, 3min, 0ms};
  c.upstream_pool = {0, 1s};
  c.routing.environment_header = "X-Env";
  c.logging.level = "off";
  c.logging.access_log = {"/tmp/access log #1.json", AccessLogFormat::json};
  ManifestConfig m;
  m.project = "*";
  m.module = "true";
  m.environment = "null";
  m.endpoints = {{"10.0.0.1:80", 1}, {"[fe80::1%eth0]:8080", 10000}, {"host-name.example:65535", 7}};
  m.balancing = "latency_aware";
  m.strip_path_prefix = true;
  ManifestConfig n;
  n.project = "123";
  n.module = "x";
  n.environment = "-";
  n.endpoints = {{"a:1", 1}};
  RateLimitConfig limit;
  limit.name = "per-key";
  limit.key = "header:X-Api-Key";
  limit.cost = 3;
  limit.scope = "global";
  limit.on_redis_failure = "deny";
  limit.lease_interval = 20ms;
  c.rate_limits = {limit};
  c.redis.address = "unix:/run/redis #1.sock";
  c.redis.password_env = "REDIS_PASSWORD";
  c.redis.command_timeout = 15ms;
  c.admin.ready_requires = {"redis"};
  limit.name = "cart";
  limit.scope = "local";
  n.rate_limits = {limit};
  n.resilience = ResilienceConfig{};
  n.resilience->retries.max_attempts = 1;
  n.resilience->retries.on_statuses = {502, 503};
  n.resilience->circuit_breaker.open_duration = 2s;
  c.manifests = {m, n};
  return c;
}

TEST(ConfigToYaml, DefaultConfigRoundTrips) {
  Config c;
  c.source = "x";
  c.listeners.emplace_back();
  ASSERT_TRUE(validate(c).empty()) << ::testing::PrintToString(errors_of(validate(c)));
  const auto yaml = to_yaml(c);
  const auto r = load_config_string(yaml, "x");
  ASSERT_TRUE(r.config) << yaml << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(*r.config, c);
}

TEST(ConfigToYaml, EveryKeyIsWritten) {
  Config c;
  c.listeners.emplace_back();
  const auto yaml = to_yaml(c);
  for (const char* key :
       {"server:", "workers: 0", "drain_timeout: 30s", "max_connections: 0", "listeners:", "name: main",
        "address: 0.0.0.0:8080", "default_environment: production", "limits:", "max_request_line_bytes: 8KiB",
        "max_header_bytes: 32KiB", "max_header_count: 100", "max_body_bytes: 0", "timeouts:", "client_header: 10s",
        "client_idle: 1m", "client_body: 1m", "upstream_connect: 5s", "upstream_response: 1m", "request_total: 0s",
        "upstream_pool:", "max_idle_per_endpoint: 64", "idle_timeout: 1m", "routing:",
        "environment_header: X-Environment", "logging:", "level: info", "access_log:", "destination: \"off\"",
        "format: text", "manifests: []"}) {
    EXPECT_NE(yaml.find(key), std::string::npos) << key << " missing in\n" << yaml;
  }
}

TEST(ConfigToYaml, FullConfigRoundTrips) {
  TempDir dir;
  const Config c = full_config(dir.write("cert.pem", "x"), dir.write("key.pem", "y"));
  ASSERT_TRUE(validate(c).empty()) << ::testing::PrintToString(errors_of(validate(c)));
  const auto yaml = to_yaml(c);
  const auto r = load_config_string(yaml, "round-trip");
  ASSERT_TRUE(r.config) << yaml << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(*r.config, c) << yaml;
  EXPECT_EQ(to_yaml(*r.config), yaml);  // a fixed point
  EXPECT_NE(yaml.find("client_header: 1ms\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("upstream_response: 3m"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("max_body_bytes: 3221225473"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("project: \"*\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("module: \"true\""), std::string::npos) << yaml;
}

TEST(ConfigToYaml, ShippedConfigRoundTrips) {
  const auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "config" / "frontdoor.yaml";
  const auto r = load_config_file(path.lexically_normal().string());
  ASSERT_TRUE(r.config) << ::testing::PrintToString(errors_of(r));
  const auto again = load_config_string(to_yaml(*r.config), r.config->source);
  ASSERT_TRUE(again.config) << ::testing::PrintToString(errors_of(again));
  EXPECT_EQ(*again.config, *r.config);
}

// --------------------------------------------------------------------------------------------
// validate() on configs built in memory
// --------------------------------------------------------------------------------------------

Config valid_config() {
  Config c;
  c.source = "<frontdoor proxy>";
  c.listeners.emplace_back();
  ManifestConfig m;
  m.project = "*";
  m.module = "*";
  m.endpoints = {{"127.0.0.1:9000", 1}};
  c.manifests.push_back(m);
  return c;
}

TEST(ConfigValidate, ValidConfigHasNoErrors) {
  EXPECT_TRUE(validate(valid_config()).empty()) << ::testing::PrintToString(errors_of(validate(valid_config())));
}

TEST(ConfigValidate, ErrorsHaveNoPosition) {
  Config c;
  const auto errors = validate(c);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].file, "<memory>");
  EXPECT_EQ(errors[0].line, 0);
  EXPECT_EQ(errors[0].column, 0);
  EXPECT_EQ(errors[0].to_string(), "<memory>: listeners: at least one listener is required");
}

TEST(ConfigValidate, EveryRule) {
  Config c = valid_config();
  c.server.workers = 1025;
  c.server.drain_timeout = Duration(-1);
  c.listeners.push_back(c.listeners[0]);                 // duplicate name "main"
  c.listeners[1].address = "127.0.0.1:65536";
  c.listeners.push_back({"", "[::1]:80", "production", {}, false, {}, TlsConfig{"", "/nonexistent.pem"}});
  c.listeners.push_back({"v6", "[zz]:80", "prod", {}, false, {}, std::nullopt});
  c.limits = {63, 62, 0, 0};
  c.timeouts.client_idle = 0ms;
  c.timeouts.upstream_connect = Duration(-5);
  c.timeouts.upstream_response = 0ms;
  c.timeouts.request_total = Duration(-1);
  c.logging.level = "INFO";
  c.logging.access_log.destination = "";
  c.manifests.push_back(c.manifests[0]);  // same key
  c.manifests.push_back({"p", "", "*", {{"host:0", 0}, {"host", 10001}, {"h:1", 1}}, "sticky", false});
  c.manifests.push_back({"p", "m", "e e", {}, "fastest", false});
  EXPECT_EQ(errors_of(validate(c)),
            (Strings{
                "<frontdoor proxy>: listeners[1].name: \"main\" is already the name of listeners[0] (listener names "
                "must be unique)",
                "<frontdoor proxy>: listeners[1].address: \"127.0.0.1:65536\" is not host:port (expected e.g. "
                "0.0.0.0:8080 or [::]:8080, port 0..65535)",
                "<frontdoor proxy>: listeners[2].name: must not be empty",
                "<frontdoor proxy>: listeners[2].tls.certificate_file: is required (a PEM certificate chain file)",
                "<frontdoor proxy>: listeners[2].tls.private_key_file: cannot read \"/nonexistent.pem\": No such file "
                "or directory",
                "<frontdoor proxy>: listeners[3].address: \"[zz]:80\" is not host:port (expected e.g. 0.0.0.0:8080 or "
                "[::]:8080, port 0..65535)",
                "<frontdoor proxy>: server.workers: 1025 is too many (expected 0..1024; 0 = one per core)",
                "<frontdoor proxy>: server.drain_timeout: must not be negative",
                "<frontdoor proxy>: limits.max_request_line_bytes: 63 is too small (expected at least 64 bytes)",
                "<frontdoor proxy>: limits.max_header_bytes: 62 is smaller than limits.max_request_line_bytes (63); "
                "the head includes the request line",
                "<frontdoor proxy>: limits.max_header_count: 0 is out of range (expected 1..10000)",
                "<frontdoor proxy>: timeouts.client_idle: must be greater than 0",
                "<frontdoor proxy>: timeouts.upstream_connect: must be greater than 0",
                "<frontdoor proxy>: timeouts.upstream_response: must be greater than 0",
                "<frontdoor proxy>: timeouts.request_total: must not be negative (0 = no limit)",
                "<frontdoor proxy>: logging.level: \"INFO\" is not a log level (expected one of: trace, debug, info, "
                "warn, error, critical, off)",
                "<frontdoor proxy>: logging.access_log.destination: must not be empty (expected off, stdout, stderr "
                "or a file path)",
                "<frontdoor proxy>: manifests[1]: project/module/environment */*/* is already defined by manifests[0]",
                "<frontdoor proxy>: manifests[2].module: is required (expected [A-Za-z0-9._-]+ or \"*\")",
                "<frontdoor proxy>: manifests[2].endpoints[0].address: \"host:0\" is not host:port (expected e.g. "
                "10.0.0.5:8080, port 1..65535)",
                "<frontdoor proxy>: manifests[2].endpoints[0].weight: 0 is out of range (expected 1..10000)",
                "<frontdoor proxy>: manifests[2].endpoints[1].address: \"host\" is not host:port (expected e.g. "
                "10.0.0.5:8080, port 1..65535)",
                "<frontdoor proxy>: manifests[2].endpoints[1].weight: 10001 is out of range (expected 1..10000)",
                "<frontdoor proxy>: manifests[3].environment: \"e e\" is not valid (expected [A-Za-z0-9._-]+ or \"*\")",
                "<frontdoor proxy>: manifests[3].endpoints: at least one endpoint is required",
                "<frontdoor proxy>: manifests[3].balancing: \"fastest\" is not a balancing policy (expected one of: "
                "round_robin, weighted, least_connections, latency_aware, consistent_hash, sticky)",
            }));
}

TEST(ConfigValidate, AddressForms) {
  for (const char* good : {"0.0.0.0:0", "127.0.0.1:65535", "[::]:8080", "[::1]:1", "[fe80::1%eth0]:80", "localhost:80",
                           "my_host.example-1:443"}) {
    Config c = valid_config();
    c.listeners[0].address = good;
    EXPECT_TRUE(validate(c).empty()) << good << ::testing::PrintToString(errors_of(validate(c)));
  }
  for (const char* bad : {"", ":80", "host", "host:", "host:-1", "host:80x", "::1:80", "[::1]80", "[::1]", "[]:80",
                          "[1.2.3.4]:80", "a b:80", "a/b:80", "host:99999", "\x01:80"}) {
    Config c = valid_config();
    c.listeners[0].address = bad;
    EXPECT_EQ(validate(c).size(), 1u) << bad;
  }
}

TEST(ConfigValidate, UpperBoundsOfPerConnectionLimits) {
  Config c = valid_config();
  c.limits.max_header_bytes = (1u << 20) + 1;
  c.limits.max_header_count = 10001;
  EXPECT_EQ(errors_of(validate(c)),
            (Strings{"<frontdoor proxy>: limits.max_header_bytes: 1048577 is too large (expected at most 1MiB)",
                     "<frontdoor proxy>: limits.max_header_count: 10001 is out of range (expected 1..10000)"}));
  c.limits.max_header_bytes = 1u << 20;
  c.limits.max_header_count = 10000;
  EXPECT_TRUE(validate(c).empty());
}

TEST(ConfigValidate, BalancingNames) {
  for (const char* name :
       {"round_robin", "weighted", "least_connections", "latency_aware", "consistent_hash", "sticky"}) {
    Config c = valid_config();
    c.manifests[0].balancing = name;
    EXPECT_TRUE(validate(c).empty()) << name;
  }
}

TEST(ConfigValidate, InvalidUtf8InFreeText) {
  Config c = valid_config();
  c.logging.access_log.destination = "/tmp/\xff.log";
  EXPECT_EQ(errors_of(validate(c)),
            Strings{"<frontdoor proxy>: logging.access_log.destination: \"/tmp/\\xff.log\" is not valid UTF-8"});
}

TEST(ConfigError, ToString) {
  EXPECT_EQ((ConfigError{"a.yaml", 12, 5, "boom"}).to_string(), "a.yaml:12:5: boom");
  EXPECT_EQ((ConfigError{"a.yaml", 0, 0, "boom"}).to_string(), "a.yaml: boom");
}

TEST(ConfigLoader, ResilienceSection) {
  const char* text = R"(listeners:
  - address: 127.0.0.1:0
resilience:
  circuit_breaker:
    consecutive_failures: 3
    open_duration: 2s
  outlier_detection:
    max_ejection_percent: 101
  retries:
    max_attempts: 0
    budget_percnt: 10
)";
  auto r = load_config_string(text, "r.yaml");
  std::vector<std::string> lines;
  for (const auto& e : r.errors) lines.push_back(e.to_string());
  ASSERT_EQ(lines.size(), 3u) << ::testing::PrintToString(lines);
  EXPECT_EQ(lines[0], "r.yaml:8:27: resilience.outlier_detection.max_ejection_percent: 101 is out of range (expected 0..100)");
  EXPECT_EQ(lines[1], "r.yaml:10:19: resilience.retries.max_attempts: 0 is out of range (expected 1..10; 1 = no retry)");
  EXPECT_EQ(lines[2].rfind("r.yaml:11:5: unknown key \"budget_percnt\"", 0), 0u) << lines[2];

  auto ok = load_config_string(
      "listeners: [{address: \"127.0.0.1:0\"}]\nresilience: {circuit_breaker: {consecutive_failures: 3, open_duration: 2s}}\n",
      "ok.yaml");
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->resilience.circuit_breaker.consecutive_failures, 3u);
  EXPECT_EQ(ok.config->resilience.circuit_breaker.open_duration, std::chrono::seconds(2));
  EXPECT_EQ(ok.config->resilience.retries.max_attempts, 3u);  // default kept
  auto again = load_config_string(to_yaml(*ok.config), "again.yaml");
  ASSERT_TRUE(again.config);
  again.config->source = ok.config->source;
  EXPECT_EQ(*again.config, *ok.config);
}

TEST(ConfigLoader, RetryStatusesAndBackoff) {
  auto ok = load_config_string(R"(listeners: [{address: "127.0.0.1:0"}]
resilience:
  retries: {on_reset: true, on_statuses: [502, 503], backoff_base: 10ms, backoff_max: 1s}
)", "r.yaml");
  ASSERT_TRUE(ok.config);
  EXPECT_TRUE(ok.config->resilience.retries.on_reset);
  EXPECT_EQ(ok.config->resilience.retries.on_statuses, (std::vector<std::uint32_t>{502, 503}));
  EXPECT_EQ(ok.config->resilience.retries.backoff_max, std::chrono::seconds(1));
  auto bad = load_config_string(R"(listeners: [{address: "127.0.0.1:0"}]
resilience:
  retries: {on_statuses: [404], backoff_base: 1s, backoff_max: 10ms}
)", "r.yaml");
  ASSERT_EQ(bad.errors.size(), 2u);
  EXPECT_EQ(bad.errors[0].message,
            "resilience.retries.on_statuses[0]: 404 is not a 5xx status (expected 500..599)");
  EXPECT_EQ(bad.errors[1].message, "resilience.retries.backoff_max: must be at least backoff_base");
}


TEST(ConfigLoader, ManifestOverridesInheritWhatTheyDoNotName) {
  const auto r = load(std::string(kMinimal) + R"(manifests:
  - project: p
    module: m
    endpoints: [a:1]
    resilience:
      retries: {on_statuses: [502]}
resilience:
  retries: {max_attempts: 5, on_statuses: [503, 504]}
  circuit_breaker: {consecutive_failures: 9}
  health_check: {path: /healthz}
)");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors.front().message);
  const auto& m = r.config->manifests[0];
  ASSERT_TRUE(m.resilience);
  EXPECT_EQ(m.resilience->retries.on_statuses, (std::vector<std::uint32_t>{502}));  // replaced, not appended
  EXPECT_EQ(m.resilience->retries.max_attempts, 5u);  // the top level's, though written after the manifest
  EXPECT_EQ(m.resilience->circuit_breaker.consecutive_failures, 9u);
  EXPECT_EQ(m.resilience->health_check.path, "/healthz");  // inherited too
  const auto bad = load(std::string(kMinimal) + R"(manifests:
  - project: p
    module: m
    endpoints: [a:1]
    resilience:
      health_check: {path: x}
      retries: {max_attempts: 0}
)");
  const auto errors = errors_of(bad);
  ASSERT_EQ(errors.size(), 2u) << ::testing::PrintToString(errors);
  EXPECT_NE(errors[0].find("manifests[0].resilience.health_check.path: \"x\" is not a path"), std::string::npos)
      << errors[0];
  EXPECT_NE(errors[1].find("manifests[0].resilience.retries.max_attempts: 0 is out of range"), std::string::npos)
      << errors[1];
}

TEST(ConfigLoader, GlobalRateLimitsAndRedis) {
  const auto ok = load(std::string(kMinimal) + R"(redis:
  address: unix:/run/redis.sock
  password_env: REDIS_PASSWORD
  database: 2
  command_timeout: 20ms
rate_limits:
  - name: shared
    scope: global
    on_redis_failure: deny
    cost: 2
    lease_interval: 10ms
)");
  ASSERT_TRUE(ok.config) << (ok.errors.empty() ? "" : ok.errors.front().message);
  EXPECT_EQ(ok.config->redis.address, "unix:/run/redis.sock");
  EXPECT_EQ(ok.config->redis.password_env, "REDIS_PASSWORD");
  EXPECT_EQ(ok.config->redis.database, 2u);
  EXPECT_EQ(ok.config->redis.command_timeout, std::chrono::milliseconds(20));
  EXPECT_EQ(ok.config->rate_limits[0].scope, "global");
  EXPECT_EQ(ok.config->rate_limits[0].on_redis_failure, "deny");
  EXPECT_EQ(ok.config->rate_limits[0].cost, 2u);
  EXPECT_EQ(ok.config->rate_limits[0].lease_interval, std::chrono::milliseconds(10));

  const auto bad = load(std::string(kMinimal) + R"(redis:
  address: nowhere
rate_limits:
  - name: a
    scope: everywhere
    on_redis_failure: panic
    burst: 5
    cost: 6
)");
  const auto errors = errors_of(bad);
  const auto has = [&](const std::string& text) {
    return std::any_of(errors.begin(), errors.end(), [&](const std::string& e) { return e.find(text) != e.npos; });
  };
  EXPECT_TRUE(has("redis.address: \"nowhere\" is not an address (expected host:port or unix:/path)")) << errors[0];
  EXPECT_TRUE(has("rate_limits[0].scope: \"everywhere\" is not a scope (expected local or global)"));
  EXPECT_TRUE(has("rate_limits[0].on_redis_failure: \"panic\" is not a policy (expected local, allow or deny)"));
  EXPECT_TRUE(has("rate_limits[0].cost: 6 is out of range (expected 1..burst, 5"));

  const auto no_redis = load(std::string(kMinimal) + "rate_limits:\n  - {name: a, scope: global}\n");
  const auto no_redis_errors = errors_of(no_redis);
  EXPECT_TRUE(std::any_of(no_redis_errors.begin(), no_redis_errors.end(), [](const std::string& e) {
    return e.find("global needs the redis section's address") != e.npos;
  }));
}
TEST(ConfigLoader, RedisThroughSentinelsOrAnAddressNotBoth) {
  auto ok = load(std::string(kMinimal) + "redis: {sentinels: [10.0.0.1:26379, s2:26379], sentinel_master: mymaster}\n");
  ASSERT_TRUE(ok.config) << errors_of(ok).front();
  EXPECT_TRUE(ok.config->redis.enabled());
  EXPECT_EQ(ok.config->redis.sentinels.size(), 2u);
  EXPECT_EQ(errors_of(load(std::string(kMinimal) + "redis: {address: r:6379, sentinels: [s:26379], sentinel_master: m}\n")),
            Strings{"config.yaml:3:37: redis.sentinels: and redis.address are both set (expected one: the server, or the "
                    "Sentinels that name it)"});
  const auto no_master = errors_of(load(std::string(kMinimal) + "redis: {sentinels: [s:26379, nope]}\n"));
  ASSERT_EQ(no_master.size(), 2u);
  EXPECT_NE(no_master[0].find("sentinel_master: \"\" is not a master name"), std::string::npos) << no_master[0];
  EXPECT_NE(no_master[1].find("redis.sentinels[1]: \"nope\" is not host:port"), std::string::npos) << no_master[1];
}

TEST(ConfigLoader, PostgresTakesOneConnectionStringSource) {
  auto ok = load(std::string(kMinimal) + "postgres: {dsn_env: PG_DSN, pool_size: 4}\nmanifest_cache: {ttl: 30s}\n");
  ASSERT_TRUE(ok.config) << errors_of(ok).front();
  EXPECT_TRUE(ok.config->postgres.enabled());
  EXPECT_EQ(ok.config->manifest_cache.ttl, std::chrono::seconds(30));
  const auto both = errors_of(load(std::string(kMinimal) + "postgres: {dsn: x, dsn_file: /y, pool_size: 0}\n"));
  ASSERT_EQ(both.size(), 2u);
  EXPECT_NE(both[0].find("names more than one of dsn, dsn_env and dsn_file"), std::string::npos) << both[0];
  EXPECT_NE(both[1].find("pool_size: 0 is out of range"), std::string::npos) << both[1];
  const auto ready = errors_of(load(std::string(kMinimal) + "admin: {address: 127.0.0.1:0, ready_requires: [postgres]}\n"));
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_NE(ready[0].find("postgres is required for readiness but there is no postgres section"), std::string::npos);
}

}  // namespace
}  // namespace frontdoor::config
