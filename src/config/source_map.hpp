#pragma once
// Internal to src/config: where each loaded value came from, so the semantic checks shared with
// in-memory configs (validate) can point at a line, and which values already failed to parse.
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "frontdoor/config/loader.hpp"

namespace frontdoor::config::detail {

struct Position {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

struct SourceMap {
  // Dotted path ("listeners[0].address") -> position of its value (of the key when the value is empty).
  std::unordered_map<std::string, Position> positions;
  // Paths that already have a parse error: semantic checks on them and below them are not reported
  // again (their values are defaults or placeholders). "" = the whole document. A set: a file may
  // hold an error in each of its 80,000 manifests, and each check looks its path up here.
  std::unordered_set<std::string> failed;
};

// The semantic checks; `map` is null for configs built in memory (errors then have line 0).
std::vector<ConfigError> check(const Config& config, const SourceMap* map);

// File order: known positions by line then column, unknown (line 0) last; stable otherwise.
void sort_errors(std::vector<ConfigError>& errors);

// Keeps the first kMaxReportedErrors errors and adds one (line 0, in `file`) that says how many
// more there were. Call it on errors in their final order.
void cap_errors(std::vector<ConfigError>& errors, const std::string& file);

// A value quoted for an error message: at most 64 characters, control characters escaped.
std::string shown(std::string_view value);
// A message from elsewhere (the YAML parser quotes the bytes it choked on) made safe to print: control
// characters and what is not UTF-8 as \xNN; at most 512 bytes.
std::string printable(std::string_view text);

// What makes `s` unfit as any string of a config ("must not contain control characters", "is not
// valid UTF-8"); empty when nothing does. The loader refuses such strings wherever they stand.
std::string text_problem(std::string_view s);

}  // namespace frontdoor::config::detail
