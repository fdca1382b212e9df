#pragma once
// Internal to src/config: where a yaml-cpp mark points, and the check that a configuration is a
// single YAML document.
#include <yaml-cpp/mark.h>
#include <yaml-cpp/node/node.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "source_map.hpp"

namespace frontdoor::config::detail {

// 1-based line and column of `mark`; {} when yaml-cpp gave none.
Position mark_position(const YAML::Mark& mark);

// Where the text goes on past its first document, and what is wrong there; nullopt when it does not.
std::optional<std::pair<Position, std::string>> after_first_document(std::string_view yaml);

// Where a walk of `root` counts its `budget`+1-th value, nullopt if it never does. Each mapping entry
// and list item is a value, and an aliased node counts again at each use (yaml-cpp shares it, the
// loader's walk does not: it builds a Config value for each use). Only kMaxWalkedDepth levels
// deep: the loader's schema never reads deeper, and a cyclic alias (`&a [*a]`) must not make the
// count's own stack grow.
inline constexpr std::size_t kMaxWalkedDepth = 32;
std::optional<Position> values_past(const YAML::Node& root, std::size_t budget);

// A YAML node as compact JSON: plain scalars that read as JSON numbers, true, false or null keep
// that type, every other scalar is a string (quoted scalars always are).
std::string to_json(const YAML::Node& node);

}  // namespace frontdoor::config::detail
