#pragma once
// Character classes of RFC 9110's field grammar, as 256-entry tables: one load per byte.
#include <array>
#include <string_view>

namespace frontdoor::http {

// tchar (RFC 9110 §5.6.2): what a field name (and a method, a coding) is made of.
constexpr std::array<bool, 256> make_token_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
inline constexpr auto kTokenChar = make_token_table();

// field-vchar / SP / HTAB / obs-text: everything but controls (and DEL).
constexpr std::array<bool, 256> make_value_table() {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7f; ++c) t[c] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  t['\t'] = true;
  return t;
}
inline constexpr auto kValueChar = make_value_table();

// reg-name's plain characters (RFC 3986 §3.2.2): unreserved and sub-delims; what a Host is made of
// (with pct-encoded escapes).
constexpr std::array<bool, 256> make_reg_name_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("-._~!$&'()*+,;=")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
inline constexpr auto kRegNameChar = make_reg_name_table();

}  // namespace frontdoor::http
