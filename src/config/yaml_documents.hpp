#pragma once
// Internal to src/config: where a yaml-cpp mark points, and the check that a configuration is a
// single YAML document.
#include <yaml-cpp/mark.h>
#include <yaml-cpp/node/node.h>

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

// A YAML node as compact JSON: plain scalars that read as JSON numbers, true, false or null keep
// that type, every other scalar is a string (quoted scalars always are).
std::string to_json(const YAML::Node& node);

}  // namespace frontdoor::config::detail
