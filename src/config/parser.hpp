#pragma once
// Internal to src/config: the schema walker that turns YAML into Config (loader.cpp: the
// configuration's sections; manifest_documents.cpp: stored manifests and `manifests put` files).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "frontdoor/config/loader.hpp"
#include "source_map.hpp"
#include "yaml_documents.hpp"

namespace frontdoor::config::detail {


inline std::string join(std::initializer_list<std::string_view> keys) {
  std::string out;
  for (auto k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

inline Position position_of(const YAML::Node& node) {
  const auto mark = node.Mark();
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

// What a node is, for "expected X, found Y".
inline std::string found(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return (node.Tag() == "!" ? "the quoted string " : "") + shown(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// One value of the document, with the dotted path that names it in messages.
struct Field {
  const YAML::Node& node;
  std::string path;
  Position pos;  // of the value; of its key when the value is empty (`key:` has no position of its own)
};

class Parser {
 public:
  Parser(std::string file, std::vector<ConfigError>& errors, SourceMap& map)
      : file_(std::move(file)), errors_(errors), map_(map) {}

  void parse(const YAML::Node& root, Config& c);

 private:
  // An error about a key: the value it names is simply not read.
  void report(Position pos, std::string message) { errors_.push_back({file_, pos.line, pos.column, std::move(message)}); }
  // An error about a value: it keeps its default (or a placeholder), which the checks must not judge.
  void error(const Field& f, std::string message) {
    report(f.pos, f.path.empty() ? std::move(message) : f.path + ": " + std::move(message));
    map_.failed.insert(f.path);
  }

  // Calls on_key(name, field) for each entry of a mapping whose key is allowed; reports the others.
  template <class F>
  void each(const Field& f, std::initializer_list<std::string_view> keys, F&& on_key) {
    if (f.node.IsNull()) return;  // `section:` with nothing under it: all defaults
    const std::string where = f.path.empty() ? "at the top level" : "in " + f.path;
    if (!f.node.IsMap()) {
      error(f, "expected a mapping with keys " + join(keys) + ", found " + found(f.node));
      return;
    }
    std::set<std::string, std::less<>> seen;
    for (const auto& entry : f.node) {
      const YAML::Node& key = entry.first;
      const Position key_pos = position_of(key);
      if (!key.IsScalar()) {
        report(key_pos, "unexpected key " + found(key) + " " + where + " (expected one of: " + join(keys) + ")");
        continue;
      }
      const std::string& name = key.Scalar();
      if (std::find(keys.begin(), keys.end(), name) == keys.end()) {
        report(key_pos, "unknown key " + shown(name) + " " + where + " (expected one of: " + join(keys) + ")");
        continue;
      }
      const std::string path = f.path.empty() ? name : f.path + "." + name;
      if (!seen.insert(name).second) {
        report(key_pos, "duplicate key " + shown(name) + " " + where + " (each key may appear once)");
        continue;
      }
      const YAML::Node& value = entry.second;
      Position pos = value.IsNull() ? key_pos : position_of(value);
      if (pos.line == 0) pos = key_pos;
      map_.positions[path] = pos;
      on_key(name, Field{value, path, pos});
    }
  }

  // Calls on_item(field) for each item of a list (`key:` with nothing is an empty list).
  template <class F>
  void list(const Field& f, std::string_view what, F&& on_item) {
    if (f.node.IsNull()) return;
    if (!f.node.IsSequence()) {
      error(f, "expected a list of " + std::string(what) + ", found " + found(f.node));
      return;
    }
    std::size_t i = 0;
    for (const auto& item : f.node) {
      const std::string path = f.path + "[" + std::to_string(i++) + "]";
      Position pos = position_of(item);
      if (pos.line == 0) pos = f.pos;
      map_.positions[path] = pos;
      on_item(Field{item, path, pos});
    }
  }

  bool scalar(const Field& f, std::string_view expected) {
    if (f.node.IsScalar()) return true;
    error(f, "expected " + std::string(expected) + ", found " + found(f.node));
    return false;
  }

  // A quoted "4" or "true" is a string: the number or boolean must be written plain.
  bool plain(const Field& f, std::string_view expected) {
    if (!scalar(f, expected)) return false;
    if (f.node.Tag() != "!") return true;
    error(f, "expected " + std::string(expected) + ", found the quoted string " + shown(f.node.Scalar()) +
                 " (write it without quotes)");
    return false;
  }

  // Control bytes (NUL, CR, LF, escape...) and bytes that are not UTF-8 are refused in every string:
  // "[::\0x]:8443" must not load as "[::]", no name or path may carry a byte that cuts a log line
  // or a header, and to_yaml must be able to write every value back unchanged.
  void string(const Field& f, std::string& out) {
    out.clear();  // on error the checks then see an empty value, and stay quiet about this path
    if (!scalar(f, "a string")) return;
    const std::string& text = f.node.Scalar();
    if (auto problem = detail::text_problem(text); !problem.empty()) return error(f, shown(text) + " " + problem);
    out = text;
  }

  template <class Int>
  void integer(const Field& f, Int& out, std::string_view expected) {
    if (!plain(f, "an integer")) return;
    const std::string& text = f.node.Scalar();
    std::uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ptr != text.data() + text.size() || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
      error(f, shown(text) + " is not a whole number (expected " + std::string(expected) + ")");
      return;
    }
    if (ec == std::errc::result_out_of_range || value > std::numeric_limits<Int>::max()) {
      // The expectation may read "N or more": the bound that was passed is the type's.
      error(f, text + " is too large (at most " + std::to_string(std::numeric_limits<Int>::max()) + "; expected " +
                   std::string(expected) + ")");
      return;
    }
    out = static_cast<Int>(value);
  }

  template <class Int>
  void size(const Field& f, Int& out) {
    if (!scalar(f, "a size")) return;
    std::uint64_t value = 0;
    if (!parse_size(f.node.Scalar(), value)) {
      error(f, shown(f.node.Scalar()) + " is not a size (expected bytes, or e.g. 8KiB, 1MiB, 1GiB)");
      return;
    }
    if (value > std::numeric_limits<Int>::max()) {
      error(f, shown(f.node.Scalar()) + " is too large (at most " + std::to_string(std::numeric_limits<Int>::max()) +
                   " bytes)");
      return;
    }
    out = static_cast<Int>(value);
  }

  void duration(const Field& f, Duration& out) {
    if (!scalar(f, "a duration")) return;
    if (!parse_duration(f.node.Scalar(), out))
      error(f, shown(f.node.Scalar()) + " is not a duration (expected e.g. 250ms, 10s, 2m; at most 87600h)");
  }

  void boolean(const Field& f, bool& out) {
    if (!plain(f, "true or false")) return;
    bool value = false;
    if (!YAML::convert<bool>::decode(f.node, value)) {
      error(f, shown(f.node.Scalar()) + " is not a boolean (expected true or false)");
      return;
    }
    out = value;
  }

  void listener(const Field& f, ListenerConfig& l);
  void manifest(const Field& f, ManifestConfig& m);
  void rate_limit(const Field& f, RateLimitConfig& limit);
  void resilience(const Field& f, ResilienceConfig& r);

  // A manifest's resilience block overrides the top-level one, which may come later in the file:
  // read once the whole document is.
  struct Deferred {
    YAML::Node node;
    std::string path;
    Position pos;
    std::size_t manifest;
  };
  std::vector<Deferred> deferred_;
  std::size_t manifest_index_ = 0;
  void endpoint(const Field& f, EndpointConfig& e);

 public:
  // The manifests of a stored document or a `manifests:` file (load_manifests_string); `items` gets
  // each manifest's node, in order.
  void parse_manifests(const YAML::Node& root, ManifestsForm form, Config& c, std::vector<YAML::Node>& items);

 private:

  std::string file_;
  std::vector<ConfigError>& errors_;
  SourceMap& map_;
};

inline std::vector<ConfigError> failure(const std::string& file, Position pos, std::string message) {
  return {{file, pos.line, pos.column, std::move(message)}};
}

// Text past kMaxConfigBytes, refused before yaml-cpp reads it. `bytes` 0: the size is not known.
inline std::vector<ConfigError> too_large(const std::string& file, std::uintmax_t bytes, std::string_view what) {
  return failure(file, {},
                 (bytes != 0 ? "is " + std::to_string(bytes) + " bytes, " : std::string("is ")) + "more than the " +
                     format_size(kMaxConfigBytes) + " " + std::string(what) + " may be");
}

// A document past kMaxConfigValues (values_past), refused before the walk reads any of it.
inline std::vector<ConfigError> too_many_values(const std::string& file, Position pos, std::string_view what) {
  return failure(file, pos,
                 std::string(what) + " holds more than " + std::to_string(kMaxConfigValues) +
                     " values once its aliases are expanded (each use of an alias, *name, counts every value of "
                     "the node it names); nothing was loaded");
}

}  // namespace frontdoor::config::detail

namespace frontdoor::config {
// For the loaders' entry points (loader.cpp, manifest_documents.cpp).
using detail::after_first_document;
using detail::failure;
using detail::too_large;
using detail::too_many_values;
using detail::values_past;
using detail::mark_position;
using detail::Parser;
using detail::SourceMap;
}  // namespace frontdoor::config
