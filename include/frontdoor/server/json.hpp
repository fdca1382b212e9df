#pragma once
// A string as a JSON string literal (for the JSON the daemon writes: the SIGUSR1 line, the admin
// endpoints, reload results). Names come from the configuration, but escape anyway.
#include <fmt/format.h>

#include <string>
#include <string_view>

#include "frontdoor/core/utf8.hpp"

namespace frontdoor::server {

// Bytes that are not UTF-8 become U+FFFD: the JSON must parse whatever a name holds.
inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    const std::size_t len = core::utf8_sequence(s, i);
    if (len == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (len > 1) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    else out += c;
    ++i;
  }
  return out + "\"";
}

}  // namespace frontdoor::server
