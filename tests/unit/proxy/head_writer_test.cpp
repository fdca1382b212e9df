#include "frontdoor/proxy/head_writer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace frontdoor::proxy {
namespace {

struct Request {
  http::RequestHead head;
  std::vector<http::Header> headers;
  std::string text;
  explicit Request(std::string t) : text(std::move(t)) {
    head.headers = &headers;
    http::HeadScanner scanner;
    Error error = Error::ok;
    EXPECT_EQ(http::parse_request_head(text, {1024, 4096, 64}, scanner, head, error), http::ParseStatus::complete);
  }
};

std::string upstream_head(const Request& r, UpstreamRequestParams params = {}) {
  if (params.proto.empty()) params.proto = "http";
  if (params.client_ip.empty()) params.client_ip = "10.0.0.9";
  if (params.request_id.empty()) params.request_id = "rid";
  if (params.target.empty()) params.target = r.head.target;
  params.default_host = "backend:80";
  char out[4096];
  const auto n = write_upstream_request_head(r.head, params, out, sizeof out);
  return std::string(out, n);
}

TEST(UpstreamRequestHead, RemovesHopByHopAndAddsForwarding) {
  Request r(
      "GET /p?q HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\n"
      "TE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.0 edge\r\n"
      "X-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(upstream_head(r),
            "GET /p?q HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.9\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: shop\r\nVia: 1.0 edge, 1.1 frontdoor\r\n"
            "X-Request-Id: rid\r\n\r\n");
}

TEST(UpstreamRequestHead, JoinsRepeatedForwardedFor) {
  Request r("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n");
  EXPECT_NE(upstream_head(r).find("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n"), std::string::npos);
}

TEST(UpstreamRequestHead, RestatesFraming) {
  Request chunked("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_NE(upstream_head(chunked).find("\r\nTransfer-Encoding: chunked\r\n\r\n"), std::string::npos);
  Request length("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n");
  EXPECT_NE(upstream_head(length).find("\r\nContent-Length: 7\r\n\r\n"), std::string::npos);
  Request zero("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(upstream_head(zero).find("\r\nContent-Length: 0\r\n\r\n"), std::string::npos);
}

TEST(UpstreamRequestHead, Http10GetsHostAndVia10) {
  Request r("GET / HTTP/1.0\r\n\r\n");
  const auto head = upstream_head(r);
  EXPECT_NE(head.find("Host: backend:80\r\n"), std::string::npos);
  EXPECT_NE(head.find("Via: 1.0 frontdoor\r\n"), std::string::npos);
  EXPECT_EQ(head.find("X-Forwarded-Host"), std::string::npos);
}

TEST(UpstreamRequestHead, OverflowReturnsZero) {
  Request r("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  UpstreamRequestParams params{};
  params.target = "/";
  char out[16];
  EXPECT_EQ(write_upstream_request_head(r.head, params, out, sizeof out), 0u);
}

TEST(ClientResponseHead, DropsHopByHopAndAddsRequestId) {
  const std::string text =
      "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\nContent-Length: 3\r\n"
      "Keep-Alive: timeout=5\r\nServer: up\r\n\r\n";
  http::ResponseHead response;
  std::vector<http::Header> headers;
  response.headers = &headers;
  http::HeadScanner scanner;
  Error error = Error::ok;
  ASSERT_EQ(http::parse_response_head(text, {1024, 4096, 64}, scanner, false, response, error),
            http::ParseStatus::complete);
  char out[1024];
  auto n = write_client_response_head(response, {"rid", {}, ClientFraming::content_length, false, false}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 200 OK\r\nServer: up\r\nX-Request-Id: rid\r\nContent-Length: 3\r\n\r\n");
  n = write_client_response_head(response, {"rid", "X-A: 1\r\n", ClientFraming::until_close, true, true}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 200 OK\r\nServer: up\r\nX-Request-Id: rid\r\nX-A: 1\r\nConnection: close\r\n\r\n");
}

http::ResponseHead parsed_response(const std::string& text, std::vector<http::Header>& headers) {
  http::ResponseHead response;
  response.headers = &headers;
  http::HeadScanner scanner;
  Error error = Error::ok;
  EXPECT_EQ(http::parse_response_head(text, {1024, 4096, 64}, scanner, false, response, error),
            http::ParseStatus::complete);
  return response;
}

TEST(ClientResponseHead, FramingIsNeverDroppedBecauseConnectionNamesIt) {
  // A bodiless answer keeps the upstream's Content-Length (framing none): named in Connection, it
  // was dropped, and a keep-alive client waited for a close that never came.
  std::vector<http::Header> headers;
  const std::string text = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Content-Length\r\n\r\n";
  const auto response = parsed_response(text, headers);
  char out[1024];
  const auto n = write_client_response_head(response, {"rid", {}, ClientFraming::none, false, false}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Request-Id: rid\r\n\r\n");
}

TEST(ClientResponseHead, KeepsTransferCodingsOtherThanTheFinalChunked) {
  std::vector<http::Header> headers;
  const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto response = parsed_response(chunked, headers);
  char out[1024];
  auto n = write_client_response_head(response, {"rid", {}, ClientFraming::chunked, false, false}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 200 OK\r\nX-Request-Id: rid\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  const std::string one_line = "HTTP/1.1 200 OK\r\nTransfer-Encoding: br , gzip,chunked\r\n\r\n";
  response = parsed_response(one_line, headers);
  n = write_client_response_head(response, {"rid", {}, ClientFraming::chunked, false, false}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 200 OK\r\nX-Request-Id: rid\r\nTransfer-Encoding: br, gzip, chunked\r\n\r\n");
  // Close-delimited with a coding: the coding stays, no chunked is added.
  const std::string close = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
  response = parsed_response(close, headers);
  n = write_client_response_head(response, {"rid", {}, ClientFraming::until_close, true, false}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 200 OK\r\nX-Request-Id: rid\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n");
  // Plain chunked is re-stated as it was.
  const std::string plain = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  response = parsed_response(plain, headers);
  n = write_client_response_head(response, {"rid", {}, ClientFraming::chunked, false, false}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 200 OK\r\nX-Request-Id: rid\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(UpstreamRequestHead, AbsoluteFormGoesOutInOriginFormWithItsAuthority) {
  const Request r("GET http://api.example.com:8080/a/b?c=d HTTP/1.1\r\nHost: ignored.example\r\n\r\n");
  EXPECT_TRUE(r.head.absolute_form);
  EXPECT_EQ(r.head.target, "/a/b?c=d");
  EXPECT_EQ(r.head.host, "api.example.com:8080");
  const auto head = upstream_head(r);
  EXPECT_EQ(head.substr(0, head.find("\r\n")), "GET /a/b?c=d HTTP/1.1");
  EXPECT_NE(head.find("\r\nHost: api.example.com:8080\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("ignored.example"), std::string::npos) << head;
}

TEST(UpstreamRequestHead, OffersAnUpgradeOnlyWhenAsked) {
  const Request r("GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  "Sec-WebSocket-Key: k\r\n\r\n");
  EXPECT_EQ(r.head.upgrade, "websocket");
  const auto plain = upstream_head(r);
  EXPECT_EQ(plain.find("Upgrade"), std::string::npos) << "hop-by-hop unless offered: " << plain;
  UpstreamRequestParams params;
  params.upgrade = "websocket";
  const auto offered = upstream_head(r, params);
  EXPECT_NE(offered.find("\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"), std::string::npos) << offered;
  EXPECT_NE(offered.find("Sec-WebSocket-Key: k"), std::string::npos);
  // Without "upgrade" in Connection, or with a body, there is nothing to offer.
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").head.upgrade, "");
  EXPECT_EQ(Request("POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                    "Content-Length: 2\r\n\r\n").head.upgrade,
            "");
}

TEST(ClientResponseHead, SwitchingProtocolsKeepsUpgrade) {
  std::vector<http::Header> headers;
  const std::string text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: a\r\n\r\n";
  auto response = parsed_response(text, headers);
  char out[1024];
  const auto n = write_client_response_head(response, {"rid", {}, ClientFraming::none, false, false, true}, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\n"
                                 "X-Request-Id: rid\r\nConnection: upgrade\r\n\r\n");
}

TEST(LocalReply, CarriesStatusBodyAndRequestId) {
  char out[2048];
  const auto n = write_local_reply(Error::upstream_connect_failed, "b:1: refused", "rid7", false, false, out, sizeof out);
  const std::string reply(out, n);
  EXPECT_EQ(reply.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u);
  EXPECT_NE(reply.find("X-Request-Id: rid7\r\n"), std::string::npos);
  EXPECT_NE(reply.find("\r\n\r\n502 Bad Gateway: upstream connection failed (b:1: refused) (request id rid7)\n"),
            std::string::npos);
  EXPECT_EQ(reply.find("Connection: close"), std::string::npos);
}

}  // namespace
}  // namespace frontdoor::proxy
