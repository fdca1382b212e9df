#include "frontdoor/proxy/head_writer.hpp"

#include <charconv>

namespace frontdoor::proxy {

using http::HeaderKind;

BufferWriter& BufferWriter::operator<<(std::uint64_t v) noexcept {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  return *this << std::string_view(digits, static_cast<std::size_t>(end - digits));
}

namespace {

// RFC 9110 §7.6.1, plus every field the message's Connection header names. (Trailer is not among
// them: trailers pass through chunked bodies unchanged, so their announcement does too.)
bool is_hop_by_hop(const http::Header& h, const http::ConnectionOptions& connection) noexcept {
  switch (h.kind) {
    case HeaderKind::connection:
    case HeaderKind::keep_alive:
    case HeaderKind::proxy_connection:
    case HeaderKind::te:
    case HeaderKind::upgrade:
    case HeaderKind::transfer_encoding:
      return true;
    case HeaderKind::host:
      // Never dropped because the client's Connection names it: the upstream would see the
      // endpoint's authority instead of the Host the request was routed by.
    case HeaderKind::content_length:
      // Nor the framing: a response whose Content-Length the upstream's Connection named went out
      // with no framing at all, and the client waited for a close that never came.
      return false;
    default:
      return connection.named_count != 0 && connection.names(h.name);
  }
}

// The response's transfer codings other than a final chunked (RFC 9112 §6.1), as one list: the
// framing is re-stated for the client, but a gzip or other coding applied to the body must reach it
// with the body. Empty when there are none.
void write_other_codings(BufferWriter& w, const http::ResponseHead& response, bool& any) noexcept {
  std::string_view last;
  bool have_last = false;
  const auto emit = [&](std::string_view coding) {
    w << (any ? ", " : "") << coding;
    any = true;
  };
  for (const http::Header& h : *response.headers) {
    if (h.kind != HeaderKind::transfer_encoding) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      const auto comma = list.find(',');
      std::string_view t = list.substr(0, comma);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (!t.empty()) {
        if (have_last) emit(last);  // not the last one: a coding to keep
        last = t;
        have_last = true;
      }
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  if (have_last && !(response.framing == http::BodyFraming::chunked && http::iequals(last, "chunked"))) emit(last);
}

}  // namespace

bool has_other_transfer_codings(const http::ResponseHead& response) noexcept {
  char none[1];
  BufferWriter discard(none, 0);
  bool any = false;
  write_other_codings(discard, response, any);
  return any;
}

std::size_t write_upstream_request_head(const http::RequestHead& request, const UpstreamRequestParams& params,
                                        char* out, std::size_t capacity) noexcept {
  BufferWriter w(out, capacity);
  w << request.method << " " << params.target_prefix << params.target << " HTTP/1.1\r\n";
  bool has_host = false;
  bool had_content_length = false;
  // Values of repeated fields we extend are gathered in order and re-emitted as one line.
  std::string_view forwarded_for_first, via_first;
  bool forwarded_for_many = false, via_many = false;
  for (const http::Header& h : *request.headers) {
    if (is_hop_by_hop(h, request.connection)) continue;
    switch (h.kind) {
      case HeaderKind::content_length: had_content_length = true; continue;
      case HeaderKind::x_request_id:
      case HeaderKind::x_forwarded_proto:
      case HeaderKind::x_forwarded_host:
      case HeaderKind::x_real_ip:
      case HeaderKind::underscore_alias:
        continue;
      case HeaderKind::forwarded_claim:
        if (!params.peer_trusted) continue;
        break;
      case HeaderKind::expect:
        // Ignored for HTTP/1.0 (RFC 9110 §10.1.1): forwarded in our HTTP/1.1 request it would count.
        if (params.drop_expect || request.version == http::Version::http10) continue;
        break;
      case HeaderKind::x_forwarded_for:
        if (forwarded_for_first.empty()) forwarded_for_first = h.value;
        else forwarded_for_many = true;
        continue;
      case HeaderKind::via:
        if (via_first.empty()) via_first = h.value;
        else via_many = true;
        continue;
      case HeaderKind::host:
        if (request.absolute_form) continue;  // the target's authority wins (RFC 9112 §3.2.2)
        has_host = true;
        break;
      default: break;
    }
    w << h.name << ": " << h.value << "\r\n";
  }
  if (!params.upgrade.empty()) w << "Connection: upgrade\r\nUpgrade: " << params.upgrade << "\r\n";
  if (request.absolute_form) w << "Host: " << request.host << "\r\n";
  else if (!has_host) w << "Host: " << params.default_host << "\r\n";

  auto emit_list = [&](std::string_view name, HeaderKind kind, std::string_view first, bool many,
                       std::string_view ours) {
    w << name << ": ";
    if (many) {
      for (const http::Header& h : *request.headers)
        if (h.kind == kind && !h.value.empty()) w << h.value << ", ";
    } else if (!first.empty()) {
      w << first << ", ";
    }
    w << ours << "\r\n";
  };
  emit_list("X-Forwarded-For", HeaderKind::x_forwarded_for, forwarded_for_first, forwarded_for_many,
            params.client_ip);
  w << "X-Forwarded-Proto: " << params.proto << "\r\n";
  if (!params.real_client_ip.empty()) w << "X-Real-IP: " << params.real_client_ip << "\r\n";
  if (!request.host.empty()) w << "X-Forwarded-Host: " << request.host << "\r\n";
  emit_list("Via", HeaderKind::via, via_first, via_many,
            request.version == http::Version::http10 ? "1.0 frontdoor" : "1.1 frontdoor");
  w << "X-Request-Id: " << params.request_id << "\r\n";
  if (request.framing == http::BodyFraming::chunked) w << "Transfer-Encoding: chunked\r\n";
  else if (request.framing == http::BodyFraming::content_length || had_content_length)
    w << "Content-Length: " << request.content_length << "\r\n";
  w << "\r\n";
  return w.size();
}

std::size_t write_client_response_head(const http::ResponseHead& response, const ClientResponseParams& params,
                                       char* out, std::size_t capacity) noexcept {
  BufferWriter w(out, capacity);
  w << "HTTP/1.1 " << static_cast<std::uint64_t>(response.status) << " " << response.reason << "\r\n";
  for (const http::Header& h : *response.headers) {
    if (params.upgrade && h.kind == HeaderKind::upgrade) {
      w << h.name << ": " << h.value << "\r\n";  // the protocol switched to: the client must see it
      continue;
    }
    if (is_hop_by_hop(h, response.connection)) continue;
    // Content-Length passes through for bodiless responses (HEAD, 304 describe the would-be body);
    // otherwise it is re-stated below with the framing.
    if (h.kind == HeaderKind::content_length && params.framing != ClientFraming::none) continue;
    // ...but never on a 1xx or 204 (RFC 9110 §8.6): a client could wait for that many bytes.
    if (h.kind == HeaderKind::content_length && (response.status < 200 || response.status == 204)) continue;
    w << h.name << ": " << h.value << "\r\n";
  }
  if (!response.has_request_id) w << "X-Request-Id: " << params.request_id << "\r\n";
  w << params.extra_headers;
  switch (params.framing) {
    case ClientFraming::content_length: w << "Content-Length: " << response.content_length << "\r\n"; break;
    case ClientFraming::chunked: {
      bool any = false;
      w << "Transfer-Encoding: ";
      write_other_codings(w, response, any);
      w << (any ? ", chunked\r\n" : "chunked\r\n");
      break;
    }
    case ClientFraming::until_close: {
      // A close-delimited body keeps its codings too (an HTTP/1.0 client is never relayed one: the
      // exchange answers 502 instead, see has_other_transfer_codings).
      if (params.client_http10) break;
      char codings[512];
      BufferWriter list(codings, sizeof codings);
      bool any = false;
      write_other_codings(list, response, any);
      if (any && list.size() != 0) w << "Transfer-Encoding: " << std::string_view(codings, list.size()) << "\r\n";
      break;
    }
    default: break;
  }
  if (params.upgrade) w << "Connection: upgrade\r\n";
  else if (params.close) w << "Connection: close\r\n";
  else if (params.client_http10) w << "Connection: keep-alive\r\n";
  w << "\r\n";
  return w.size();
}

std::size_t write_local_reply(Error error, std::string_view detail, std::string_view request_id, bool close,
                              bool head_only, char* out, std::size_t capacity,
                              std::uint32_t retry_after_seconds, std::string_view extra_headers) noexcept {
  const ErrorInfo& info = error_info(error);
  char body[1024];
  BufferWriter b(body, sizeof body);
  b << static_cast<std::uint64_t>(info.status) << " " << info.reason << ": " << info.message;
  if (!detail.empty()) b << " (" << detail.substr(0, 600) << ")";
  b << " (request id " << request_id << ")\n";
  const std::string_view body_view(body, b.size());

  BufferWriter w(out, capacity);
  w << "HTTP/1.1 " << static_cast<std::uint64_t>(info.status) << " " << info.reason << "\r\n"
    << "Content-Type: text/plain; charset=utf-8\r\n"
    << "Content-Length: " << static_cast<std::uint64_t>(body_view.size()) << "\r\n"
    << "X-Request-Id: " << request_id << "\r\n";
  if (retry_after_seconds > 0) w << "Retry-After: " << static_cast<std::uint64_t>(retry_after_seconds) << "\r\n";
  w << extra_headers;
  w << (close ? "Connection: close\r\n" : "") << "\r\n";
  if (!head_only) w << body_view;
  return w.size();
}

}  // namespace frontdoor::proxy

