#include "frontdoor/http/path.hpp"

#include <cstring>

namespace frontdoor::http {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// Nothing to normalise: the common case costs one pass and no copy.
bool plainly_normal(std::string_view path) noexcept {
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%' || c == '\\') return false;
    if (c == '/' && i + 1 < path.size() && (path[i + 1] == '/' || path[i + 1] == '.')) return false;
  }
  return true;
}

// The first two segments of a normalised path (project and module) may not hide a slash.
bool routing_segments_hide_a_slash(std::string_view path) noexcept {
  std::size_t slashes = 0, i = 0;
  for (; i < path.size() && slashes <= 2; ++i) {
    if (path[i] == '/') ++slashes;
    else if (path[i] == '%' && i + 2 < path.size() && (path.substr(i, 3) == "%2F" || path.substr(i, 3) == "%5C"))
      return true;
  }
  return false;
}

}  // namespace

NormalizedPath normalize_path(std::string_view target, std::string& storage) {
  auto invalid = [](std::string_view why) { return NormalizedPath{NormalizedPath::Verdict::invalid, {}, why}; };
  if (target.find('#') != std::string_view::npos) return invalid("a fragment (#) in the request target");
  if (target.empty() || target.front() != '/') return {};
  const std::string_view path = target.substr(0, target.find('?'));
  const std::string_view query = target.substr(path.size());
  if (plainly_normal(path)) return {};
  if (storage.size() < target.size()) storage.resize(target.size());
  char* const out = storage.data();

  std::size_t n = 0;  // bytes of `out` written: always "/" or "/seg/.../seg" or ".../"
  std::size_t i = 0;
  while (i < path.size()) {
    // path[i] is a '/': skip the run of them (merged into one), then read one segment.
    while (i < path.size() && path[i] == '/') ++i;
    const std::size_t segment_out = n;
    out[n++] = '/';
    std::size_t dots = 0, length = 0;  // a segment of one or two decoded dots is a dot segment
    for (; i < path.size() && path[i] != '/'; ++i) {
      char c = path[i];
      if (c == '\\') return invalid("a backslash in the path");
      if (c == '%') {
        const int hi = i + 2 < path.size() ? hex_value(path[i + 1]) : -1;
        const int lo = hi >= 0 ? hex_value(path[i + 2]) : -1;
        if (lo < 0) return invalid("a malformed percent-escape in the path");
        const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
        i += 2;
        if (!unreserved(decoded)) {
          static constexpr char kHex[] = "0123456789ABCDEF";
          out[n++] = '%';
          out[n++] = kHex[hi];
          out[n++] = kHex[lo];
          length += 3;
          continue;
        }
        c = static_cast<char>(decoded);
      }
      out[n++] = c;
      ++length;
      dots += c == '.' ? 1 : 0;
    }
    const bool last = i >= path.size();
    if (length == 1 && dots == 1) {
      n = last ? segment_out + 1 : segment_out;  // "/a/./b" -> "/a/b"; "/a/." -> "/a/" (RFC 3986 §5.2.4)
    } else if (length == 2 && dots == 2) {
      if (segment_out == 0) return invalid("a \"..\" segment above the root");
      std::size_t parent = segment_out - 1;
      while (out[parent] != '/') --parent;  // out[0] is a '/': the previous segment starts here
      n = last ? parent + 1 : parent;
    }
  }
  if (n == 0) out[n++] = '/';
  if (routing_segments_hide_a_slash(std::string_view(out, n)))
    return invalid("an encoded slash in the path's first two segments");
  // n <= path.size(): every input byte writes at most one, and a slash run or a dot segment fewer.
  std::memcpy(out + n, query.data(), query.size());
  n += query.size();
  if (std::string_view(out, n) == target) return {};
  return {NormalizedPath::Verdict::rewritten, std::string_view(out, n), {}};
}

}  // namespace frontdoor::http
