#pragma once
// Loader: YAML text -> validated Config, or every error found, each as `file:line:col: message`.
// Runs on the control thread / CLI only; may allocate and use exceptions internally, never throws out.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "frontdoor/config/config.hpp"

namespace frontdoor::config {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string message;  // what is wrong, and what was expected

  std::string to_string() const;  // "file:line:col: message"
};

// A load reports at most this many errors, the first in file order, then one more (line 0) that
// says how many it left out: a generated file with an error in each of 80,000 manifests should
// not answer with 80,000 lines.
inline constexpr std::size_t kMaxReportedErrors = 100;

struct LoadResult {
  std::optional<Config> config;     // set iff errors is empty
  std::vector<ConfigError> errors;  // in file order (see kMaxReportedErrors)
};

// What one document may cost the loader, whatever its shape. YAML aliases (`*name`) repeat the
// node they name at each use without costing text, so the text's size alone bounds nothing: the
// loader counts the values its walk would read (an alias counts each value it expands to, at each
// use) and refuses a document past kMaxConfigValues before reading any; it refuses text past
// kMaxConfigBytes before parsing it. Real configurations are far below both: config/frontdoor.yaml
// holds 55 values; 80,000 manifests of one endpoint each, 5 MB, hold 400,000.
inline constexpr std::size_t kMaxConfigBytes = 16u << 20;
inline constexpr std::size_t kMaxConfigValues = 1'000'000;

LoadResult load_config_file(const std::string& path);
LoadResult load_config_string(std::string_view yaml, const std::string& source_name);

// Manifests kept outside the configuration file (the manifest store), checked by the same rules as
// the `manifests:` section against `base`: its top-level resilience fills what a manifest does not
// name, its redis section is what global limits need.
//   one:  a stored document — a single manifest as a JSON (or YAML) mapping;
//   list: a file for `frontdoor manifests put` — a mapping whose only key is `manifests:`.
// On success `documents[i]` is manifests[i] as compact JSON, what the store keeps.
enum class ManifestsForm : std::uint8_t { one, list };
struct ManifestsResult {
  std::vector<ManifestConfig> manifests;  // empty iff errors is not
  std::vector<std::string> documents;
  std::vector<ConfigError> errors;
};
ManifestsResult load_manifests_string(std::string_view text, const std::string& source_name, const Config& base,
                                      ManifestsForm form);

// Semantic checks shared by the YAML loader and configs built in memory (frontdoor proxy).
std::vector<ConfigError> validate(const Config& config);

// The YAML that load_config_string() turns back into an equal Config (every key written, defaults too).
std::string to_yaml(const Config& config);

// Parsers for the scalar forms, exposed for the CLI and tests. Return false on bad input.
// The longest duration the configuration takes: 10 years. Deadlines are steady_clock time points in
// nanoseconds (292 years from boot at most), so a longer "never" (99999999h) would wrap them into
// the past and time out everything at once.
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 3650);
bool parse_duration(std::string_view text, Duration& out);
bool parse_size(std::string_view text, std::uint64_t& out);
std::string format_duration(Duration d);  // largest exact unit: "250ms", "30s", "2m", "1h"; 0 -> "0s"
std::string format_size(std::uint64_t bytes);  // largest exact binary unit: "8KiB", "1MiB", "1GiB"; else bytes

// True for a manifest key part (project, module, environment): [A-Za-z0-9._-]{1,128} or exactly "*".
bool is_key_part(std::string_view text);

}  // namespace frontdoor::config
