#pragma once
// Config: the plain structs a YAML file becomes. yaml-cpp types never leave the loader.
//
// Every field's name is its YAML key. Defaults here are the documented defaults
// (docs/configuration.md); `frontdoor proxy --print-config` prints them.
// Every struct compares equal member by member (to_yaml -> load round trips, tests).
// Durations are written in YAML as "250ms", "10s", "2m", "1h"; sizes as a byte count or with a
// binary suffix "8KiB", "1MiB", "1GiB" (also k/K, m/M, g/G meaning the same binary units).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace frontdoor::config {

using Duration = std::chrono::milliseconds;

struct TlsConfig {
  std::string certificate_file;  // PEM chain
  std::string private_key_file;  // PEM key

  friend bool operator==(const TlsConfig&, const TlsConfig&) = default;
};

struct ListenerConfig {
  std::string name = "main";
  std::string address = "0.0.0.0:8080";  // host:port, "[::]:8080"; port 0 = any free port
  // Environment of requests that carry no environment header (routing.environment_header).
  std::string default_environment = "production";
  // Environments a request may choose with the environment header on this listener ("*": any). By
  // default none: the header is ignored and every request is served in default_environment, so a
  // client cannot reach another environment's manifests by sending a header.
  std::vector<std::string> environments;
  // Connections begin with a PROXY protocol header (v1 or v2: AWS NLB, HAProxy): the client's
  // address is the one it names. A connection without one is closed.
  bool proxy_protocol = false;
  // Peers (networks in CIDR notation) trusted to say who the client is in X-Forwarded-For: the
  // client's address is then the right-most entry not itself trusted. Empty: the peer is the client.
  std::vector<std::string> trusted_proxies;
  std::optional<TlsConfig> tls;  // absent: plain HTTP

  friend bool operator==(const ListenerConfig&, const ListenerConfig&) = default;
};

struct ServerConfig {
  unsigned workers = 0;  // 0 = one per core
  Duration drain_timeout{std::chrono::seconds(30)};
  // On SIGTERM: /ready answers 503 at once, traffic is still served this long (so the endpoint
  // leaves the Kubernetes Service first), then the drain proper begins.
  Duration drain_delay{std::chrono::seconds(0)};
  // Client connections, whole process. At the limit the longest-idle keep-alive connection is closed
  // to admit a new one; only when none is idle is the new one closed at accept. 0: from the file
  // descriptor limit (half of it, less a reserve), logged at start.
  std::uint32_t max_connections = 0;
  // Client connections one client may hold open (an IPv4 address, an IPv6 /64), whole process;
  // more are closed at accept. Peers in a listener's trusted_proxies are not capped (they carry many
  // clients); behind PROXY protocol the client is the address the header names. 0: no cap.
  std::uint32_t max_connections_per_client = 0;
  // How often TLS listeners' certificate and key files are checked for a renewal under the same
  // paths (stat only; read again when they changed). 0: only at start and at a reload.
  Duration certificate_check_interval{std::chrono::seconds(10)};

  friend bool operator==(const ServerConfig&, const ServerConfig&) = default;
};

struct LimitsConfig {
  std::uint32_t max_request_line_bytes = 8192;  // -> 414
  std::uint32_t max_header_bytes = 32768;       // whole head incl. request line -> 431
  std::uint32_t max_header_count = 100;         // -> 431
  std::uint64_t max_body_bytes = 0;             // 0 = unlimited; -> 413

  friend bool operator==(const LimitsConfig&, const LimitsConfig&) = default;
};

struct TimeoutsConfig {
  Duration client_header{std::chrono::seconds(10)};   // first byte to end of head (slowloris)
  Duration client_idle{std::chrono::seconds(60)};     // keep-alive wait for the next request
  Duration client_body{std::chrono::seconds(60)};     // max gap between two reads of the request body
  Duration upstream_connect{std::chrono::seconds(5)};
  Duration upstream_response{std::chrono::seconds(60)};  // max gap waiting on the upstream -> 504
  Duration request_total{std::chrono::seconds(0)};       // whole exchange; 0 = no limit
  Duration tunnel_idle{std::chrono::minutes(5)};  // an upgraded connection (WebSocket) with no byte either way

  friend bool operator==(const TimeoutsConfig&, const TimeoutsConfig&) = default;
};

struct UpstreamPoolConfig {
  std::uint32_t max_idle_per_endpoint = 64;  // per worker
  Duration idle_timeout{std::chrono::seconds(60)};
  // Endpoints named by host name are resolved again this often (0s: only at start and reload).
  Duration resolve_interval{std::chrono::seconds(30)};

  friend bool operator==(const UpstreamPoolConfig&, const UpstreamPoolConfig&) = default;
};

// Protection every manifest gets (issue #4 adds per-manifest overrides). docs/configuration.md.
struct CircuitBreakerSettings {
  std::uint32_t consecutive_failures = 5;  // failures (see `failures`) in a row; 0 = off
  std::uint32_t failure_rate_percent = 0;  // open when failures / results reach it over `window`; 0 = off
  Duration window{std::chrono::seconds(10)};
  std::uint32_t min_requests = 20;  // results in the window before the rate counts
  Duration open_duration{std::chrono::seconds(5)};  // open -> half-open (one probe)
  std::uint32_t half_open_max_probes = 1;
  std::uint32_t half_open_successes_to_close = 1;
  // What counts as a failure: connect_error, timeout, bad_response (reset or unparsable), 5xx.
  std::vector<std::string> failures{"connect_error", "timeout", "bad_response"};
  // Every endpoint's breaker open: "fail" (503 + Retry-After at once) or "try_anyway" (pick one
  // regardless: a last resort for upstreams that recover under load).
  std::string when_all_open = "fail";

  friend bool operator==(const CircuitBreakerSettings&, const CircuitBreakerSettings&) = default;
};

struct OutlierDetectionSettings {
  std::uint32_t consecutive_failures = 5;  // 5xx answers, timeouts, broken responses in a row; 0 = off
  Duration base_ejection_time{std::chrono::seconds(30)};  // x the times ejected
  Duration max_ejection_time{std::chrono::seconds(300)};
  std::uint32_t max_ejection_percent = 50;  // of a manifest's endpoints
  // Every usable endpoint ejected or failing its health check: "use_ejected" (a suspect endpoint
  // beats none) or "fail" (503).
  std::string when_all_ejected = "use_ejected";

  friend bool operator==(const OutlierDetectionSettings&, const OutlierDetectionSettings&) = default;
};

struct RetrySettings {
  std::uint32_t max_attempts = 3;  // first try included; a connect failure moves on to another endpoint
  std::uint32_t budget_percent = 20;  // retries at most this share of requests (10 s window) ...
  std::uint32_t min_retries_per_second = 3;  // ... plus this floor
  // Idempotent requests without a body are also retried (another endpoint, backoff with full jitter)
  // when the upstream resets before answering, or answers with one of these statuses.
  bool on_reset = false;
  std::vector<std::uint32_t> on_statuses;  // e.g. [502, 503, 504]
  Duration backoff_base{std::chrono::milliseconds(25)};
  Duration backoff_max{std::chrono::milliseconds(250)};
  // An attempt without a response head this long after it started is abandoned; an idempotent
  // request without a body then goes to another endpoint (else 504). 0 = off (upstream_response).
  Duration per_try_timeout{0};

  friend bool operator==(const RetrySettings&, const RetrySettings&) = default;
};

// Active HTTP health checks of every endpoint (empty path = off).
struct HealthCheckSettings {
  std::string path;  // e.g. /healthz
  Duration interval{std::chrono::seconds(5)};
  Duration timeout{std::chrono::seconds(1)};
  std::uint32_t healthy_threshold = 2;
  std::uint32_t unhealthy_threshold = 3;
  std::uint32_t expected_status_min = 200;
  std::uint32_t expected_status_max = 399;

  friend bool operator==(const HealthCheckSettings&, const HealthCheckSettings&) = default;
};

struct ResilienceConfig {
  CircuitBreakerSettings circuit_breaker;
  HealthCheckSettings health_check;
  OutlierDetectionSettings outlier_detection;
  RetrySettings retries;

  friend bool operator==(const ResilienceConfig&, const ResilienceConfig&) = default;
};

// A rate limit on every request. GCRA, equivalent to a token bucket: `burst` requests at once,
// refilled at `requests_per_second`.
struct RateLimitConfig {
  std::string name;  // in RateLimit-Policy / RateLimit headers and logs
  // What is counted: "client_ip", "header:<Name>" (requests without it are not limited), "path"
  // (the first two path segments: project and module), or "manifest" (project/module/environment).
  std::string key = "client_ip";
  std::uint32_t requests_per_second = 100;
  std::uint32_t burst = 100;
  std::uint32_t cost = 1;  // units one request takes
  // key client_ip: IPv6 clients are counted per network of this prefix length (a host gets a /64 to
  // choose addresses from); 128 counts each address.
  std::uint32_t ipv6_prefix = 64;
  // token_bucket: refuse beyond the burst. leaky_bucket: space admitted requests at the rate (each
  // is held until its turn), refusing beyond `burst` waiting. sliding_window: at most
  // `requests_per_window` in any `window` (instead of rate and burst). The last two: local only.
  std::string algorithm = "token_bucket";
  std::uint32_t requests_per_window = 100;  // sliding_window
  Duration window{std::chrono::seconds(60)};  // sliding_window
  // local: this process alone; global: shared by every replica through Redis (needs `redis`).
  std::string scope = "local";
  // global: while Redis cannot answer — "local" (this process enforces the limit alone), "allow"
  // (fail open) or "deny" (fail closed: 503).
  std::string on_redis_failure = "local";
  // global: tokens are leased from Redis in batches of about requests_per_second x lease_interval.
  Duration lease_interval{std::chrono::milliseconds(50)};

  friend bool operator==(const RateLimitConfig&, const RateLimitConfig&) = default;
};

// Load shedding: past a threshold, low-priority manifests get 503 + Retry-After; past 1.5x it,
// normal ones too; `high` is never shed. Each 0 = that signal is off.
struct LoadSheddingConfig {
  std::uint32_t max_inflight_requests = 0;  // per worker
  Duration max_event_loop_lag{0};           // how late a worker's 100 ms tick runs
  std::uint64_t max_memory_bytes = 0;       // resident memory of the process

  friend bool operator==(const LoadSheddingConfig&, const LoadSheddingConfig&) = default;
};

// The Redis server shared by the replicas (global rate limits). Empty address = none.
struct RedisConfig {
  std::string address;       // "host:port" or "unix:/path/to/socket"
  // Or: Sentinels that name the primary of `sentinel_master` (asked at every (re)connection; a
  // failover is followed). Either `address` or `sentinels`, not both.
  std::vector<std::string> sentinels;  // "host:port" each
  std::string sentinel_master;
  std::string password_env;  // name of an environment variable holding the AUTH password
  std::uint32_t database = 0;
  Duration connect_timeout{std::chrono::seconds(1)};
  Duration command_timeout{std::chrono::milliseconds(100)};  // a slower reply counts as Redis down
  std::string key_prefix = "frontdoor:";
  // Name of an environment variable holding a secret (16 bytes or more) shared by the replicas: it
  // keys the hash of global rate-limit keys, so a client cannot choose keys that collide with
  // another's. Unset: global limits hash with a fixed key (a warning at start); local limits always
  // use a random key of their own process.
  std::string key_secret_env;

  bool enabled() const noexcept { return !address.empty() || !sentinels.empty(); }
  friend bool operator==(const RedisConfig&, const RedisConfig&) = default;
};

// The manifest store's source of truth (docs/manifests.md). Set one of dsn, dsn_env, dsn_file to turn
// the store on; without any, manifests come from the `manifests:` section only.
struct PostgresConfig {
  std::string dsn;       // libpq connection string or URI (a password in it is better in dsn_env / dsn_file)
  std::string dsn_env;   // name of an environment variable holding it
  std::string dsn_file;  // file holding it (a mounted Kubernetes Secret); trailing newline ignored
  // Reads go to this replica when set (same three forms); changes are always read from the primary.
  std::string replica_dsn;
  std::string replica_dsn_env;
  // LISTEN needs a direct connection (not PgBouncer's transaction pooling). Empty: the dsn.
  std::string listen_dsn;
  std::string listen_dsn_env;
  std::uint32_t pool_size = 2;  // threads, each with one connection, that run the queries
  Duration connect_timeout{std::chrono::seconds(2)};
  Duration query_timeout{std::chrono::seconds(1)};  // a slower answer counts as PostgreSQL down

  bool enabled() const noexcept { return !dsn.empty() || !dsn_env.empty() || !dsn_file.empty(); }
  friend bool operator==(const PostgresConfig&, const PostgresConfig&) = default;
};

// The in-process cache (L1) of stored manifests, and how long Redis (L2) keeps them.
struct ManifestCacheConfig {
  std::uint32_t max_entries = 10000;
  std::uint64_t max_bytes = 64ull << 20;  // of documents
  Duration ttl{std::chrono::minutes(5)};  // refreshed in the background after 80 % of it
  Duration redis_ttl{std::chrono::hours(1)};
  // The index of stored keys is read again this often (changes also arrive by NOTIFY at once).
  Duration index_refresh{std::chrono::minutes(1)};

  friend bool operator==(const ManifestCacheConfig&, const ManifestCacheConfig&) = default;
};

struct RoutingConfig {
  // Header that names the environment of a request; absent -> the listener's default_environment.
  std::string environment_header = "X-Environment";

  friend bool operator==(const RoutingConfig&, const RoutingConfig&) = default;
};

enum class AccessLogFormat { text, json };

struct AccessLogConfig {
  std::string destination = "off";  // off | stdout | stderr | <file path>
  AccessLogFormat format = AccessLogFormat::text;

  friend bool operator==(const AccessLogConfig&, const AccessLogConfig&) = default;
};

struct LoggingConfig {
  std::string level = "info";  // trace debug info warn error critical off
  AccessLogConfig access_log;

  friend bool operator==(const LoggingConfig&, const LoggingConfig&) = default;
};

struct EndpointConfig {
  std::string address;  // host:port; a host name is resolved when the config is loaded
  std::uint32_t weight = 1;
  // Failover order: traffic goes to the lowest priority that has a usable endpoint (0 = primary).
  std::uint32_t priority = 0;

  friend bool operator==(const EndpointConfig&, const EndpointConfig&) = default;
};

// An embedded default manifest: the routing and policy document of one service, keyed by
// (project, module, environment). "*" in any key part matches every value (least specific wins last).
struct ManifestConfig {
  std::string project;
  std::string module;
  std::string environment = "*";
  std::vector<EndpointConfig> endpoints;
  std::string balancing = "round_robin";
  bool strip_path_prefix = false;  // forward /{project}/{module}/rest as /rest
  // consistent_hash: what is hashed — "request_uri", "header:<Name>" or "cookie:<Name>".
  std::string hash_key = "request_uri";
  // sticky: the cookie that pins a client to the endpoint that served it first.
  std::string sticky_cookie = "frontdoor_upstream";
  // Upgrade tokens (RFC 9110 §7.8) this manifest tunnels after the upstream's 101; any other upgrade
  // is not offered to the upstream (the request goes as a plain one). [] = none.
  std::vector<std::string> upgrades{"websocket"};
  std::string priority = "normal";  // high | normal | low: who is shed first under load
  // Cluster limits for the whole process (0 = none): requests in flight, requests being retried.
  std::uint32_t max_requests = 0;
  std::uint32_t max_active_retries = 0;
  // Upstream connections opened for this manifest (idle ones included), and requests allowed to
  // wait for one when they are all busy; beyond both: 503. Whole process; 0 = no limit.
  std::uint32_t max_connections = 0;
  std::uint32_t max_pending = 0;
  // Limits on this manifest's requests only, in addition to the top-level ones (state per manifest).
  std::vector<RateLimitConfig> rate_limits{};
  // Overrides of the top-level circuit_breaker / outlier_detection / retries (the keys it names; the
  // rest as the top level says). Absent: the top level's. health_check is top-level only.
  std::optional<ResilienceConfig> resilience{};

  friend bool operator==(const ManifestConfig&, const ManifestConfig&) = default;
};

// The admin listener (probes, metrics): off when `address` is empty. Served by the control thread,
// so a stuck worker cannot hide from /health.
struct AdminConfig {
  std::string address;  // host:port
  Duration rate_window{std::chrono::seconds(30)};  // http_requests_per_second: requests over this window
  // Name of an environment variable holding a bearer token: POST /reload then needs
  // `Authorization: Bearer <token>`. Empty: whoever reaches the admin port may reload.
  std::string token_env;
  // Dependencies whose outage fails readiness ("redis"). Empty: none does — the embedded
  // defaults and local limits keep serving without them.
  std::vector<std::string> ready_requires;

  friend bool operator==(const AdminConfig&, const AdminConfig&) = default;
};

struct Config {
  std::string source;  // file the config came from ("<memory>" for built ones)
  ServerConfig server;
  std::vector<ListenerConfig> listeners;  // at least one
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  UpstreamPoolConfig upstream_pool;
  RoutingConfig routing;
  ResilienceConfig resilience;
  std::vector<RateLimitConfig> rate_limits;
  // Which rate limit fields responses carry: "ietf" (RateLimit-Policy / RateLimit, draft-ietf-
  // httpapi-ratelimit-headers), "legacy" (X-RateLimit-Limit / -Remaining / -Reset), "both" or "none".
  std::string rate_limit_headers = "ietf";
  RedisConfig redis;
  PostgresConfig postgres;
  ManifestCacheConfig manifest_cache;
  LoadSheddingConfig load_shedding;
  LoggingConfig logging;
  AdminConfig admin;
  std::vector<ManifestConfig> manifests;

  friend bool operator==(const Config&, const Config&) = default;
};

}  // namespace frontdoor::config
