// The scalar forms of the configuration: durations, sizes, and how errors print.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/core/utf8.hpp"
#include "source_map.hpp"

namespace frontdoor::config {
namespace {

// Leading decimal digits of `text` as a value; false when there are none or they overflow.
bool leading_number(std::string_view text, std::uint64_t& value, std::string_view& rest) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc() || ptr != text.data() + digits) return false;
  rest = text.substr(digits);
  return true;
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

bool parse_duration(std::string_view text, Duration& out) {
  std::uint64_t value = 0;
  std::string_view unit;
  if (!leading_number(text, value, unit)) return false;
  std::uint64_t factor = 0;
  if (unit == "ms") factor = 1;
  else if (unit == "s") factor = 1000;
  else if (unit == "m") factor = 60'000;
  else if (unit == "h") factor = 3'600'000;
  else if (unit.empty() && value == 0) factor = 1;  // a bare 0 needs no unit; any other number does
  else return false;
  constexpr auto kMax = static_cast<std::uint64_t>(kMaxDuration.count());
  if (value > kMax / factor) return false;
  out = Duration(static_cast<Duration::rep>(value * factor));
  return true;
}

bool parse_size(std::string_view text, std::uint64_t& out) {
  std::uint64_t value = 0;
  std::string_view unit;
  if (!leading_number(text, value, unit)) return false;
  unsigned shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "k" || unit == "K" || unit == "KiB") shift = 10;
  else if (unit == "m" || unit == "M" || unit == "MiB") shift = 20;
  else if (unit == "g" || unit == "G" || unit == "GiB") shift = 30;
  else return false;
  if (value > (std::numeric_limits<std::uint64_t>::max() >> shift)) return false;
  out = value << shift;
  return true;
}

std::string format_duration(Duration d) {
  const auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_size(std::uint64_t bytes) {
  if (bytes == 0) return "0";
  if (bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

bool is_key_part(std::string_view text) {
  if (text == "*") return true;
  if (text.empty() || text.size() > 128) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

namespace detail {

// Why a string may not be a config value: control characters, or bytes that are not UTF-8 (which
// to_yaml could not write back unchanged). Empty when it may.
std::string text_problem(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return "must not contain control characters";
    const std::size_t len = core::utf8_sequence(s, i);
    if (len == 0) return "is not valid UTF-8";
    if (len == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) <= 0x9f)
      return "must not contain control characters";  // U+0080..U+009F
    i += len;
  }
  return {};
}

namespace {

// `value` with control characters and what is not UTF-8 written as \xNN (and, when `quoted`, `"`
// and `\` escaped), at most `max_bytes` of it.
std::string escaped(std::string_view value, bool quoted, std::size_t max_bytes) {
  std::string out;
  std::size_t i = 0;
  while (i < value.size()) {
    const auto c = static_cast<unsigned char>(value[i]);
    const std::size_t len = core::utf8_sequence(value, i);
    if (i + std::max<std::size_t>(len, 1) > max_bytes) break;
    if (quoted && (c == '"' || c == '\\')) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f || len == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out.append(value.substr(i, len));
      i += len;
      continue;
    }
    ++i;
  }
  if (i < value.size()) out += "...";
  return out;
}

}  // namespace

std::string printable(std::string_view text) { return escaped(text, false, 512); }

std::string shown(std::string_view value) {
  // Echoed into logs and into the JSON of a refused reload: cut on a character boundary, and what
  // is not UTF-8 shown as \xNN, so that JSON stays valid.
  return "\"" + escaped(value, true, 64) + "\"";
}

void sort_errors(std::vector<ConfigError>& errors) {
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    if (a.line == 0 || b.line == 0) return a.line != 0 && b.line == 0;
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
}

void cap_errors(std::vector<ConfigError>& errors, const std::string& file) {
  if (errors.size() <= kMaxReportedErrors) return;
  const std::size_t more = errors.size() - kMaxReportedErrors;
  errors.resize(kMaxReportedErrors);
  errors.push_back({file, 0, 0,
                    "and " + std::to_string(more) + " more error" + (more == 1 ? "" : "s") + " (only the first " +
                        std::to_string(kMaxReportedErrors) + " are shown)"});
}

}  // namespace detail
}  // namespace frontdoor::config
