#include "frontdoor/http/message_head.hpp"

#include <cctype>
#include <cstring>

#include "frontdoor/http/field_chars.hpp"

namespace frontdoor::http {
namespace {

inline char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals_dashed(std::string_view name, std::string_view lower_dashed) noexcept {
  if (name.size() != lower_dashed.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i] == '_' ? '-' : lower(name[i]);
    if (c != lower_dashed[i]) return false;
  }
  return true;
}

// What a name with an underscore would be taken for by a gateway interface that maps '-' to '_'.
HeaderKind classify_underscored(std::string_view n) noexcept {
  for (std::string_view aliased : {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
                                   "x-forwarded-prefix", "x-real-ip", "x-request-id", "x-original-url",
                                   "x-rewrite-url", "content-length", "transfer-encoding"})
    if (iequals_dashed(n, aliased)) return HeaderKind::underscore_alias;
  return HeaderKind::other;
}

HeaderKind classify(std::string_view n) noexcept {
  switch (n.size()) {
    case 9:
      if (iequals(n, "forwarded")) return HeaderKind::forwarded_claim;
      if (iequals(n, "x-real-ip")) return HeaderKind::x_real_ip;
      break;
    case 13: if (iequals(n, "x-rewrite-url")) return HeaderKind::forwarded_claim; break;
    case 2: if (iequals(n, "te")) return HeaderKind::te; break;
    case 3: if (iequals(n, "via")) return HeaderKind::via; break;
    case 4: if (iequals(n, "host")) return HeaderKind::host; break;
    case 6: if (iequals(n, "expect")) return HeaderKind::expect; break;
    case 7:
      if (iequals(n, "trailer")) return HeaderKind::trailer;
      if (iequals(n, "upgrade")) return HeaderKind::upgrade;
      break;
    case 10:
      if (iequals(n, "connection")) return HeaderKind::connection;
      if (iequals(n, "keep-alive")) return HeaderKind::keep_alive;
      break;
    case 12: if (iequals(n, "x-request-id")) return HeaderKind::x_request_id; break;
    case 14:
      if (iequals(n, "content-length")) return HeaderKind::content_length;
      if (iequals(n, "x-original-url")) return HeaderKind::forwarded_claim;
      break;
    case 15: if (iequals(n, "x-forwarded-for")) return HeaderKind::x_forwarded_for; break;
    case 16:
      if (iequals(n, "proxy-connection")) return HeaderKind::proxy_connection;
      if (iequals(n, "x-forwarded-host")) return HeaderKind::x_forwarded_host;
      break;
    case 17:
      if (iequals(n, "transfer-encoding")) return HeaderKind::transfer_encoding;
      if (iequals(n, "x-forwarded-proto")) return HeaderKind::x_forwarded_proto;
      break;
    default: break;
  }
  if (n.size() > 12 && iequals(n.substr(0, 12), "x-forwarded-")) return HeaderKind::forwarded_claim;
  if (n.find('_') != std::string_view::npos) return classify_underscored(n);
  return HeaderKind::other;
}

inline std::string_view trim_ows(std::string_view v) noexcept {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// Calls f(token) for each element of a comma-separated list, skipping empty elements.
template <class F>
void for_each_token(std::string_view list, F&& f) noexcept {
  while (!list.empty()) {
    const auto comma = list.find(',');
    f(trim_ows(list.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool parse_content_length(std::string_view v, std::uint64_t& out) noexcept {
  if (v.empty() || v.size() > 18) return false;  // 18 digits cannot overflow uint64
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  out = n;
  return true;
}

bool parse_connection(std::string_view value, ConnectionOptions& opts) noexcept {
  bool ok = true;
  for_each_token(value, [&](std::string_view token) {
    if (token.empty()) return;
    if (iequals(token, "close")) opts.close = true;
    else if (iequals(token, "keep-alive")) opts.keep_alive = true;
    else if (opts.named_count < ConnectionOptions::kMaxNamed) opts.named[opts.named_count++] = token;
    else ok = false;
  });
  return ok;
}

// Outcome of locating the head in the buffer.
enum class Locate : std::uint8_t { found, incomplete, error };

// Finds the end of the head ("\r\n\r\n"), refusing bare LF, and enforcing the line/head limits.
// Leading empty lines before the start line are skipped (RFC 9112 §2.2); `start` returns where it begins.
Locate locate_head(std::string_view data, const HeadLimits& limits, HeadScanner& scanner, Error line_error,
                   std::size_t& start, std::size_t& end, Error& error) noexcept {
  start = 0;
  while (start + 1 < data.size() && data[start] == '\r' && data[start + 1] == '\n' && start < 8) start += 2;
  std::size_t pos = std::max<std::size_t>(scanner.scanned, start);
  const char* base = data.data();
  // The start line must end within max_line_bytes (+CRLF), whatever the read sizes were.
  const std::size_t line_window = std::min<std::size_t>(data.size(), start + limits.max_line_bytes + 2);
  if (std::memchr(base + start, '\n', line_window - start) == nullptr &&
      data.size() > start + limits.max_line_bytes + 1) {
    error = line_error;
    return Locate::error;
  }
  while (pos < data.size()) {
    const void* hit = std::memchr(base + pos, '\n', data.size() - pos);
    if (hit == nullptr) break;
    const std::size_t idx = static_cast<std::size_t>(static_cast<const char*>(hit) - base);
    if (idx == 0 || data[idx - 1] != '\r') {
      error = Error::bad_request;  // bare LF: refused rather than guessed (RFC 9112 §2.2)
      return Locate::error;
    }
    if (idx >= start + 3 && data[idx - 2] == '\n' && data[idx - 3] == '\r') {
      end = idx + 1;
      if (end > limits.max_head_bytes) {
        error = Error::header_too_large;
        return Locate::error;
      }
      return Locate::found;
    }
    pos = idx + 1;
  }
  if (data.size() >= limits.max_head_bytes) {
    error = Error::header_too_large;
    return Locate::error;
  }
  // Keep the last 3 bytes for re-scan: the terminator may straddle reads.
  scanner.scanned = static_cast<std::uint32_t>(data.size() > 3 ? data.size() - 3 : 0);
  return Locate::incomplete;
}

// Parses header lines in [pos, end) (end includes the final CRLF). Returns false with `error` set.
bool parse_header_lines(std::string_view data, std::size_t pos, std::size_t end, const HeadLimits& limits,
                        std::vector<Header>& headers, Error protocol_error, Error& error) noexcept {
  const char* p = data.data();
  while (pos < end) {
    if (p[pos] == '\r') return pos + 2 == end;  // the empty line
    if (p[pos] == ' ' || p[pos] == '\t') {  // obs-fold
      error = protocol_error;
      return false;
    }
    const std::size_t name_begin = pos;
    while (kTokenChar[static_cast<unsigned char>(p[pos])]) ++pos;
    if (pos == name_begin || p[pos] != ':') {  // empty name, or whitespace/garbage before ':'
      error = protocol_error;
      return false;
    }
    const std::string_view name(p + name_begin, pos - name_begin);
    ++pos;
    const std::size_t value_begin = pos;
    while (kValueChar[static_cast<unsigned char>(p[pos])]) ++pos;
    if (p[pos] != '\r' || p[pos + 1] != '\n') {  // a control byte inside the value
      error = protocol_error;
      return false;
    }
    if (headers.size() >= limits.max_header_count) {
      error = Error::too_many_headers;
      return false;
    }
    headers.push_back(Header{name, trim_ows(std::string_view(p + value_begin, pos - value_begin)), classify(name)});
    pos += 2;
  }
  error = protocol_error;
  return false;
}

bool parse_version(std::string_view v, Version& out, bool& supported) noexcept {
  supported = true;
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' ||
      v[7] > '9')
    return false;
  if (v[5] != '1') {
    supported = false;
    return true;
  }
  out = v[7] == '0' ? Version::http10 : Version::http11;
  return true;
}

bool is_valid_request_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                    c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

// Host and an absolute-form authority: uri-host [":" port] (RFC 9112 §3.2, RFC 3986 §3.2.2), or
// empty (Host only). Anything else is a 400: the value goes on to the upstream, to X-Forwarded-Host
// and to routing, where "evil.example/../x" or a space would be read as something else.
bool is_valid_authority(std::string_view a) noexcept {
  std::size_t i = 0;
  if (!a.empty() && a.front() == '[') {  // IP-literal: hex digits, ':' and '.' (v4 in v6)
    const auto close = a.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (i = 1; i < close; ++i) {
      const char c = a[i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
        return false;
    }
    i = close + 1;
  } else {  // reg-name (IPv4 included): unreserved / pct-encoded / sub-delims
    for (; i < a.size() && a[i] != ':'; ++i) {
      const char c = a[i];
      if (kRegNameChar[static_cast<unsigned char>(c)]) continue;
      if (c != '%' || i + 2 >= a.size() || !std::isxdigit(static_cast<unsigned char>(a[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(a[i + 2])))
        return false;
      i += 2;
    }
  }
  if (i == a.size()) return true;
  if (a[i] != ':' || a.size() - i - 1 > 5) return false;  // a port: at most 5 digits, maybe none
  for (++i; i < a.size(); ++i)
    if (a[i] < '0' || a[i] > '9') return false;
  return true;
}

// absolute-form (RFC 9112 §3.2.2): "http" or "https" "://" authority [path] ["?" query]. The target
// becomes its path and query, and `host` its authority, which wins over the Host header. Anything
// else that is not origin-form (authority-form outside CONNECT, a bare word, userinfo) is refused.
bool to_origin_form(RequestHead& out) noexcept {
  std::string_view t = out.target;
  const auto sep = t.find("://");
  if (sep == std::string_view::npos) return false;
  const std::string_view scheme = t.substr(0, sep);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return false;
  t.remove_prefix(sep + 3);
  const auto authority_end = std::min(t.find('/'), t.find('?'));
  const std::string_view authority = t.substr(0, authority_end);
  if (authority.empty() || !is_valid_authority(authority)) return false;
  out.host = authority;
  out.target = authority_end == std::string_view::npos ? std::string_view() : t.substr(authority_end);
  out.absolute_form = true;
  return true;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool ConnectionOptions::names(std::string_view header_name) const noexcept {
  for (std::uint8_t i = 0; i < named_count; ++i)
    if (iequals(named[i], header_name)) return true;
  return false;
}

ParseStatus parse_request_head(std::string_view data, const HeadLimits& limits, HeadScanner& scanner,
                               RequestHead& out, Error& error) noexcept {
  std::size_t start = 0, end = 0;
  switch (locate_head(data, limits, scanner, Error::request_line_too_long, start, end, error)) {
    case Locate::incomplete: return ParseStatus::incomplete;
    case Locate::error: return ParseStatus::error;
    case Locate::found: break;
  }
  const char* p = data.data();
  std::size_t pos = start;
  // request-line = method SP request-target SP HTTP-version CRLF
  const std::size_t method_begin = pos;
  while (kTokenChar[static_cast<unsigned char>(p[pos])]) ++pos;
  if (pos == method_begin || p[pos] != ' ') return error = Error::bad_request, ParseStatus::error;
  out.method = std::string_view(p + method_begin, pos - method_begin);
  const std::size_t target_begin = ++pos;
  while (static_cast<unsigned char>(p[pos]) > 0x20 && static_cast<unsigned char>(p[pos]) < 0x7f) ++pos;
  if (pos == target_begin || p[pos] != ' ') return error = Error::bad_request, ParseStatus::error;
  out.target = std::string_view(p + target_begin, pos - target_begin);
  const std::size_t version_begin = ++pos;
  while (p[pos] != '\r') ++pos;  // locate_head guarantees a CRLF ahead
  bool supported = true;
  if (!parse_version(std::string_view(p + version_begin, pos - version_begin), out.version, supported) ||
      p[pos + 1] != '\n')
    return error = Error::bad_request, ParseStatus::error;
  if (!supported) return error = Error::unsupported_version, ParseStatus::error;
  pos += 2;

  auto& headers = *out.headers;
  headers.clear();
  if (!parse_header_lines(data, pos, end, limits, headers, Error::bad_request, error)) return ParseStatus::error;

  out.framing = BodyFraming::none;
  out.content_length = 0;
  out.host = {};
  out.request_id = {};
  out.connection = ConnectionOptions{};
  out.expect_continue = false;
  out.is_head = out.method == "HEAD";
  bool seen_host = false, seen_length = false, seen_te = false;
  for (const Header& h : headers) {
    switch (h.kind) {
      case HeaderKind::host:
        if (seen_host || !is_valid_authority(h.value)) return error = Error::bad_request, ParseStatus::error;
        seen_host = true;
        out.host = h.value;
        break;
      case HeaderKind::content_length: {
        std::uint64_t n = 0;
        if (!parse_content_length(h.value, n) || (seen_length && n != out.content_length))
          return error = Error::smuggling_rejected, ParseStatus::error;
        seen_length = true;
        out.content_length = n;
        break;
      }
      case HeaderKind::transfer_encoding: {
        if (seen_te) return error = Error::smuggling_rejected, ParseStatus::error;
        seen_te = true;
        if (iequals(h.value, "chunked")) break;
        // Anything else: chunked not last is ambiguous (400); other codings we do not implement (501).
        bool chunked_seen = false, chunked_last = false;
        for_each_token(h.value, [&](std::string_view t) {
          chunked_last = iequals(t, "chunked");
          chunked_seen = chunked_seen || chunked_last;
        });
        error = (chunked_seen && !chunked_last) || h.value.empty() ? Error::smuggling_rejected
                                                                   : Error::unsupported_transfer_coding;
        return ParseStatus::error;
      }
      case HeaderKind::connection:
        if (!parse_connection(h.value, out.connection)) return error = Error::bad_request, ParseStatus::error;
        break;
      case HeaderKind::expect:
        // An HTTP/1.0 client cannot take a 1xx: its expectation is ignored (RFC 9110 §10.1.1).
        if (out.version == Version::http11 && iequals(h.value, "100-continue")) out.expect_continue = true;
        break;
      case HeaderKind::x_request_id:
        if (out.request_id.empty() && is_valid_request_id(h.value)) out.request_id = h.value;
        break;
      default: break;
    }
  }
  if (seen_te) {
    if (seen_length || out.version == Version::http10) return error = Error::smuggling_rejected, ParseStatus::error;
    out.framing = BodyFraming::chunked;
  } else if (seen_length && out.content_length > 0) {
    out.framing = BodyFraming::content_length;
  }
  if (!seen_host && out.version == Version::http11) return error = Error::missing_host, ParseStatus::error;
  out.upgrade = {};
  if (out.version == Version::http11 && out.framing == BodyFraming::none && out.connection.names("upgrade")) {
    for (const Header& h : headers)
      if (h.kind == HeaderKind::upgrade && !h.value.empty()) out.upgrade = h.value;
  }
  out.absolute_form = false;
  // The asterisk-form is OPTIONS's alone (RFC 9112 §3.2.4): a "GET *" was routed and forwarded.
  if (out.target == "*" && out.method != "OPTIONS") return error = Error::bad_request, ParseStatus::error;
  if (out.target.front() != '/' && out.target != "*") {
    if (!to_origin_form(out)) return error = Error::bad_request, ParseStatus::error;
  }
  out.head_bytes = static_cast<std::uint32_t>(end);
  scanner.reset();
  return ParseStatus::complete;
}

ParseStatus parse_response_head(std::string_view data, const HeadLimits& limits, HeadScanner& scanner,
                                bool request_was_head, ResponseHead& out, Error& error) noexcept {
  std::size_t start = 0, end = 0;
  switch (locate_head(data, limits, scanner, Error::upstream_bad_response, start, end, error)) {
    case Locate::incomplete: return ParseStatus::incomplete;
    case Locate::error: error = Error::upstream_bad_response; return ParseStatus::error;
    case Locate::found: break;
  }
  const char* p = data.data();
  std::size_t pos = start;
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
  bool supported = true;
  if (end - pos < 14 || !parse_version(std::string_view(p + pos, 8), out.version, supported) || !supported ||
      p[pos + 8] != ' ')
    return error = Error::upstream_bad_response, ParseStatus::error;
  pos += 9;
  unsigned status = 0;
  for (int i = 0; i < 3; ++i, ++pos) {
    if (p[pos] < '0' || p[pos] > '9') return error = Error::upstream_bad_response, ParseStatus::error;
    status = status * 10 + static_cast<unsigned>(p[pos] - '0');
  }
  if (status < 100) return error = Error::upstream_bad_response, ParseStatus::error;
  out.status = status;
  std::size_t reason_begin = pos;
  if (p[pos] == ' ') reason_begin = ++pos;
  else if (p[pos] != '\r') return error = Error::upstream_bad_response, ParseStatus::error;
  while (kValueChar[static_cast<unsigned char>(p[pos])]) ++pos;
  if (p[pos] != '\r' || p[pos + 1] != '\n') return error = Error::upstream_bad_response, ParseStatus::error;
  out.reason = std::string_view(p + reason_begin, pos - reason_begin);
  pos += 2;

  auto& headers = *out.headers;
  headers.clear();
  if (!parse_header_lines(data, pos, end, limits, headers, Error::upstream_bad_response, error)) {
    error = Error::upstream_bad_response;
    return ParseStatus::error;
  }
  out.connection = ConnectionOptions{};
  out.content_length = 0;
  out.has_request_id = false;
  bool seen_length = false, chunked = false, seen_te = false;
  int chunked_codings = 0;
  for (const Header& h : headers) {
    switch (h.kind) {
      case HeaderKind::content_length: {
        std::uint64_t n = 0;
        if (!parse_content_length(h.value, n) || (seen_length && n != out.content_length))
          return error = Error::upstream_bad_response, ParseStatus::error;
        seen_length = true;
        out.content_length = n;
        break;
      }
      case HeaderKind::transfer_encoding:
        seen_te = true;
        chunked = false;
        for_each_token(h.value, [&](std::string_view t) {
          chunked = iequals(t, "chunked");
          chunked_codings += chunked ? 1 : 0;
        });
        break;
      case HeaderKind::connection:
        if (!parse_connection(h.value, out.connection))
          return error = Error::upstream_bad_response, ParseStatus::error;
        break;
      case HeaderKind::x_request_id: out.has_request_id = true; break;
      default: break;
    }
  }
  // Chunked applied twice, or not as the last coding (RFC 9112 §6.1), has no one reading: relaying
  // it would hand the client a framing it reads another way than we did.
  if (chunked_codings > 1 || (chunked_codings == 1 && !chunked))
    return error = Error::upstream_bad_response, ParseStatus::error;
  // A Transfer-Encoding in an HTTP/1.0 message is faulty framing (RFC 9112 §6.1): read as given,
  // but the connection is not used again.
  out.framing_doubtful = (seen_te && seen_length) || (status == 204 && (seen_te || out.content_length > 0)) ||
                         (seen_te && out.version == Version::http10);
  if (request_was_head || status < 200 || status == 204 || status == 304) out.framing = BodyFraming::none;
  else if (seen_te) out.framing = chunked ? BodyFraming::chunked : BodyFraming::until_close;
  else if (seen_length) out.framing = out.content_length > 0 ? BodyFraming::content_length : BodyFraming::none;
  else out.framing = BodyFraming::until_close;
  out.head_bytes = static_cast<std::uint32_t>(end);
  scanner.reset();
  return ParseStatus::complete;
}

bool upgrade_was_offered(std::string_view offered, std::string_view chosen) noexcept {
  bool any = false, all_offered = true;
  for_each_token(chosen, [&](std::string_view protocol) {
    if (protocol.empty()) return;
    any = true;
    bool found = false;
    for_each_token(offered, [&](std::string_view o) { found = found || iequals(o, protocol); });
    all_offered = all_offered && found;
  });
  return any && all_offered;
}

}  // namespace frontdoor::http
