#pragma once
// A string as a JSON string literal (for the JSON the daemon writes: the SIGUSR1 line, the admin
// endpoints, reload results). Names come from the configuration, but escape anyway.
#include <fmt/format.h>

#include <string>
#include <string_view>

namespace frontdoor::server {

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace frontdoor::server
