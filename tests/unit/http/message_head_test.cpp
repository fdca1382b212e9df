#include "frontdoor/http/message_head.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace frontdoor::http {
namespace {

constexpr HeadLimits kLimits{64, 512, 8};

struct Parsed {
  std::string text;  // the views point into it
  ParseStatus status;
  Error error = Error::ok;
  RequestHead head;
  std::vector<Header> headers;
};

// Heap-allocated so views stay valid wherever the result goes.
std::unique_ptr<Parsed> parse_ptr(const std::string& text, HeadLimits limits = kLimits) {
  auto p = std::make_unique<Parsed>();
  p->text = text;
  p->head.headers = &p->headers;
  HeadScanner scanner;
  p->status = parse_request_head(p->text, limits, scanner, p->head, p->error);
  return p;
}
#define parse(...) (*parse_ptr(__VA_ARGS__))

TEST(RequestHead, ParsesMinimalRequest) {
  auto p_owner = parse_ptr("GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\nX-Thing:  v \r\n\r\nBODY");
  auto& p = *p_owner;
  ASSERT_EQ(p.status, ParseStatus::complete);
  EXPECT_EQ(p.head.method, "GET");
  EXPECT_EQ(p.head.target, "/a/b?x=1");
  EXPECT_EQ(p.head.version, Version::http11);
  EXPECT_EQ(p.head.host, "example");
  ASSERT_EQ(p.headers.size(), 2u);
  EXPECT_EQ(p.headers[1].name, "X-Thing");
  EXPECT_EQ(p.headers[1].value, "v");
  EXPECT_EQ(p.head.framing, BodyFraming::none);
  EXPECT_EQ(p.head.head_bytes, 54u);
  EXPECT_TRUE(p.head.keep_alive());
}

TEST(RequestHead, IncompleteUntilBlankLine) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\n").status, ParseStatus::incomplete);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\n\r").status, ParseStatus::incomplete);
}

TEST(RequestHead, IncrementalScanFindsTerminatorAcrossCalls) {
  const std::string full = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestHead head;
  std::vector<Header> headers;
  head.headers = &headers;
  HeadScanner scanner;
  Error error = Error::ok;
  ParseStatus status = ParseStatus::incomplete;
  for (std::size_t n = 1; n <= full.size(); ++n) {
    status = parse_request_head(std::string_view(full).substr(0, n), kLimits, scanner, head, error);
    if (n < full.size()) {
      ASSERT_EQ(status, ParseStatus::incomplete) << n;
    }
  }
  EXPECT_EQ(status, ParseStatus::complete);
}

TEST(RequestHead, ContentLengthAndChunked) {
  auto cl_owner = parse_ptr("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
  auto& cl = *cl_owner;
  ASSERT_EQ(cl.status, ParseStatus::complete);
  EXPECT_EQ(cl.head.framing, BodyFraming::content_length);
  EXPECT_EQ(cl.head.content_length, 12u);
  auto te_owner = parse_ptr("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n");
  auto& te = *te_owner;
  ASSERT_EQ(te.status, ParseStatus::complete);
  EXPECT_EQ(te.head.framing, BodyFraming::chunked);
  auto dup_owner = parse_ptr("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
  auto& dup = *dup_owner;
  ASSERT_EQ(dup.status, ParseStatus::complete);
  EXPECT_EQ(dup.head.content_length, 3u);
}

struct Rejected {
  const char* name;
  const char* text;
  Error error;
};

class RequestHeadRejects : public ::testing::TestWithParam<Rejected> {};

TEST_P(RequestHeadRejects, WithTheRightError) {
  auto p_owner = parse_ptr(GetParam().text);
  auto& p = *p_owner;
  EXPECT_EQ(p.status, ParseStatus::error);
  EXPECT_EQ(p.error, GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, RequestHeadRejects,
    ::testing::Values(
        Rejected{"cl_and_te", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                 Error::smuggling_rejected},
        Rejected{"two_lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                 Error::smuggling_rejected},
        Rejected{"plus_length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", Error::smuggling_rejected},
        Rejected{"list_length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
                 Error::smuggling_rejected},
        Rejected{"negative_length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                 Error::smuggling_rejected},
        Rejected{"huge_length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
                 Error::smuggling_rejected},
        Rejected{"chunked_not_last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                 Error::smuggling_rejected},
        Rejected{"two_te", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                 Error::smuggling_rejected},
        Rejected{"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Error::smuggling_rejected},
        Rejected{"gzip_chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                 Error::unsupported_transfer_coding},
        Rejected{"xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
                 Error::unsupported_transfer_coding},
        Rejected{"bare_lf", "GET / HTTP/1.1\nHost: x\n\n", Error::bad_request},
        Rejected{"bare_lf_header", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", Error::bad_request},
        Rejected{"bare_cr", "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", Error::bad_request},
        Rejected{"obs_fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", Error::bad_request},
        Rejected{"space_before_colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", Error::bad_request},
        Rejected{"missing_host", "GET / HTTP/1.1\r\n\r\n", Error::missing_host},
        Rejected{"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Error::bad_request},
        Rejected{"bad_version", "GET / HTTP/1\r\nHost: x\r\n\r\n", Error::bad_request},
        Rejected{"http2", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", Error::unsupported_version},
        Rejected{"space_in_target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", Error::bad_request},
        Rejected{"empty_method", " / HTTP/1.1\r\nHost: x\r\n\r\n", Error::bad_request}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RequestHead, NulInValueRejected) {
  const std::string text("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 36);
  auto p_owner = parse_ptr(text);
  auto& p = *p_owner;
  EXPECT_EQ(p.status, ParseStatus::error);
  EXPECT_EQ(p.error, Error::bad_request);
}

TEST(RequestHead, Limits) {
  const std::string long_line = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_EQ(parse(long_line).error, Error::request_line_too_long);
  // Even before the line ends.
  EXPECT_EQ(parse("GET /" + std::string(100, 'a')).error, Error::request_line_too_long);
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 10; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(parse(many + "\r\n").error, Error::too_many_headers);
  const std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(600, 'v') + "\r\n\r\n";
  EXPECT_EQ(parse(big).error, Error::header_too_large);
  EXPECT_EQ(parse(big.substr(0, 530)).error, Error::header_too_large);
}

TEST(RequestHead, ConnectionOptionsAndKeepAlive) {
  auto p_owner = parse_ptr("GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\n\r\n");
  auto& p = *p_owner;
  ASSERT_EQ(p.status, ParseStatus::complete);
  EXPECT_TRUE(p.head.connection.close);
  EXPECT_TRUE(p.head.connection.names("x-secret"));
  EXPECT_FALSE(p.head.keep_alive());
  auto h10_owner = parse_ptr("GET / HTTP/1.0\r\n\r\n");
  auto& h10 = *h10_owner;
  ASSERT_EQ(h10.status, ParseStatus::complete);
  EXPECT_FALSE(h10.head.keep_alive());
  auto h10ka_owner = parse_ptr("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto& h10ka = *h10ka_owner;
  EXPECT_TRUE(h10ka.head.keep_alive());
}

TEST(RequestHead, RequestIdOnlyWhenSafe) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123\r\n\r\n").head.request_id, "abc-123");
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\"b\r\n\r\n").head.request_id, "");
}

TEST(RequestHead, LeadingEmptyLinesIgnored) {
  auto p_owner = parse_ptr("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  auto& p = *p_owner;
  ASSERT_EQ(p.status, ParseStatus::complete);
  EXPECT_EQ(p.head.method, "GET");
}

ParseStatus parse_response(const std::string& text, bool head_request, ResponseHead& out, std::vector<Header>& hs) {
  static std::string storage;  // views stay valid until the next call
  storage = text;
  out.headers = &hs;
  HeadScanner scanner;
  Error error = Error::ok;
  return parse_response_head(storage, kLimits, scanner, head_request, out, error);
}

TEST(ResponseHead, Framing) {
  ResponseHead r;
  std::vector<Header> hs;
  ASSERT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, r, hs), ParseStatus::complete);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.reason, "OK");
  EXPECT_EQ(r.framing, BodyFraming::content_length);
  ASSERT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, r, hs), ParseStatus::complete);
  EXPECT_EQ(r.framing, BodyFraming::none);
  ASSERT_EQ(parse_response("HTTP/1.1 204 No Content\r\n\r\n", false, r, hs), ParseStatus::complete);
  EXPECT_EQ(r.framing, BodyFraming::none);
  ASSERT_EQ(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, r, hs),
            ParseStatus::complete);
  EXPECT_EQ(r.framing, BodyFraming::chunked);
  ASSERT_EQ(parse_response("HTTP/1.0 200 OK\r\n\r\n", false, r, hs), ParseStatus::complete);
  EXPECT_EQ(r.framing, BodyFraming::until_close);
  EXPECT_FALSE(r.keep_alive());
  ASSERT_EQ(parse_response("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, r, hs), ParseStatus::complete);
  EXPECT_EQ(r.reason, "");
  EXPECT_EQ(parse_response("HTTP/1.1 2x0 OK\r\n\r\n", false, r, hs), ParseStatus::error);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false, r, hs),
            ParseStatus::error);
  // Chunked twice, or not last, is not a framing anyone reads the same way.
  for (const char* te : {"chunked, chunked", "chunked, gzip", "gzip, chunked, chunked"}) {
    EXPECT_EQ(parse_response(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n", false, r, hs),
              ParseStatus::error) << te;
  }
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                           false, r, hs), ParseStatus::error);
  ASSERT_EQ(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, r, hs),
            ParseStatus::complete);
  EXPECT_EQ(r.framing, BodyFraming::chunked);
  ASSERT_EQ(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, r, hs),
            ParseStatus::complete);
  EXPECT_EQ(r.framing, BodyFraming::until_close);
  // In HTTP/1.0, a Transfer-Encoding is faulty framing (RFC 9112 §6.1): read, never reused.
  ASSERT_EQ(parse_response("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
                           false, r, hs), ParseStatus::complete);
  EXPECT_EQ(r.framing, BodyFraming::chunked);
  EXPECT_TRUE(r.keep_alive());
  EXPECT_FALSE(r.reusable());
  ASSERT_EQ(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, r, hs),
            ParseStatus::complete);
  EXPECT_TRUE(r.reusable());
}

TEST(RequestHead, HostMustBeAnAuthority) {
  for (const char* good : {"", "a.example", "a.example:8080", "a.example:", "127.0.0.1:1", "[::1]", "[::1]:443",
                           "[2001:db8::7]", "xn--bcher-kva.example", "under_score.local", "a%2Eb"}) {
    auto p = parse_ptr(std::string("GET / HTTP/1.1\r\nHost: ") + good + "\r\n\r\n");
    EXPECT_EQ(p->status, ParseStatus::complete) << good;
    EXPECT_EQ(p->head.host, good);
  }
  for (const char* bad : {"evil.example/../x @y", "a b", "a/b", "user@a.example", "a.example#x", "a.example:80:80",
                          "a.example:123456", "a.example:8o", "[::1", "[]", "[::g]", "[::1]x", "a%zz", "a%2", "a\\b",
                          "a?b"}) {
    auto p = parse_ptr(std::string("GET / HTTP/1.1\r\nHost: ") + bad + "\r\n\r\n");
    EXPECT_EQ(p->status, ParseStatus::error) << bad;
    EXPECT_EQ(p->error, Error::bad_request) << bad;
    auto absolute = parse_ptr(std::string("GET http://") + bad + "/x HTTP/1.1\r\nHost: h\r\n\r\n");
    if (std::string_view(bad).find_first_of("/?#") == std::string_view::npos) {
      EXPECT_EQ(absolute->status, ParseStatus::error) << bad;
    }
  }
}

TEST(RequestHead, AbsoluteFormBecomesOriginFormWithItsAuthority) {
  const HeadLimits limits{256, 1024, 8};
  auto p = parse_ptr("GET HTTP://h.example:81?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", limits);
  ASSERT_EQ(p->status, ParseStatus::complete);
  EXPECT_TRUE(p->head.absolute_form);
  EXPECT_EQ(p->head.host, "h.example:81");
  EXPECT_EQ(p->head.target, "?q=1");  // no path: the writer adds the "/"
  for (const char* bad : {"ftp://h/x", "http:///x", "http://u:p@h/x", "h/x", "http:/h/x", "//h/x"}) {
    auto q = parse_ptr(std::string("GET ") + bad + " HTTP/1.1\r\nHost: h\r\n\r\n", limits);
    if (std::string(bad) == "//h/x") {
      EXPECT_EQ(q->status, ParseStatus::complete) << bad;  // origin-form with an empty first segment
      continue;
    }
    EXPECT_EQ(q->status, ParseStatus::error) << bad;
    EXPECT_EQ(q->error, Error::bad_request) << bad;
  }
  auto star = parse_ptr("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", limits);
  EXPECT_EQ(star->status, ParseStatus::complete);
  EXPECT_FALSE(star->head.absolute_form);
}

TEST(ChunkedScanner, ChunkExtensionsShareTheTrailerBudget) {
  ChunkedScanner s(0, 64);
  std::string body;
  for (int i = 0; i < 3; ++i) body += "1;" + std::string(21, 'e') + "\r\nx\r\n";
  auto r = s.scan(body);
  EXPECT_EQ(r.error, Error::ok);  // 63 extension bytes: within 64
  r = s.scan("1;eeee\r\n");
  EXPECT_EQ(r.error, Error::bad_request);  // one byte too many: 400, not streamed without end
}

TEST(ChunkedScanner, ValidatesAndFindsTheEnd) {
  ChunkedScanner s;
  std::string payload;
  const std::string body = "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  auto r = s.scan(body, [&](const char* p, std::size_t n) { payload.append(p, n); });
  EXPECT_EQ(r.error, Error::ok);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, body.size() - 4);
  EXPECT_EQ(payload, "hello0123456789");
}

TEST(ChunkedScanner, ByteByByte) {
  ChunkedScanner s;
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  std::string payload;
  for (std::size_t i = 0; i < body.size(); ++i) {
    auto r = s.scan(std::string_view(body).substr(i, 1), [&](const char* p, std::size_t n) { payload.append(p, n); });
    ASSERT_EQ(r.error, Error::ok);
    ASSERT_EQ(r.consumed, 1u);
    EXPECT_EQ(r.done, i + 1 == body.size());
  }
  EXPECT_EQ(payload, "abc");
}

TEST(ChunkedScanner, RejectsMalformed) {
  for (const char* bad : {"x\r\n", "3\nabc\r\n", "3\r\nabcd\r\n", "3\r\nabc\n", "\r\n", "0\r\n\r\r",
                          "0\r\n bad-fold\r\n\r\n", "1ffffffffffffffff\r\n", "5 \r\n", "5\t\r\n"}) {
    ChunkedScanner s;
    EXPECT_NE(s.scan(bad).error, Error::ok) << bad;
  }
}

// A trailer line reaches the upstream as it came: one that is not a field line (a request line, a
// name with a space, a control byte) would be read as something else by a loose parser.
TEST(ChunkedScanner, TrailersAreFieldLines) {
  for (const char* bad : {"0\r\nGET /admin HTTP/1.1\r\n\r\n", "0\r\nX\r\n\r\n", "0\r\n: v\r\n\r\n",
                          "0\r\nBad Name: v\r\n\r\n", "0\r\nName : v\r\n\r\n", "0\r\nName: a\x01b\r\n\r\n",
                          "0\r\nName: a\nb\r\n\r\n", "0\r\n\tfold: v\r\n\r\n"}) {
    ChunkedScanner s;
    EXPECT_EQ(s.scan(bad).error, Error::bad_request) << bad;
  }
  ChunkedScanner s;
  const std::string ok = "0\r\nChecksum: abc\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\t!\r\n\r\n";
  const auto r = s.scan(ok);
  EXPECT_EQ(r.error, Error::ok);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, ok.size());
}

TEST(ChunkedScanner, WhitespaceOnlyBeforeAnExtension) {
  ChunkedScanner s;
  const auto r = s.scan("5 ;name=v\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(r.error, Error::ok);
  EXPECT_TRUE(r.done);
}

TEST(ChunkedScanner, EnforcesBodyLimit) {
  ChunkedScanner s(10);
  EXPECT_EQ(s.scan("5\r\nhello\r\n").error, Error::ok);
  EXPECT_EQ(s.scan("6\r\n").error, Error::body_too_large);
}

}  // namespace
}  // namespace frontdoor::http

TEST(Upgrade, A101MustNameAProtocolThatWasOffered) {
  using frontdoor::http::upgrade_was_offered;
  EXPECT_TRUE(upgrade_was_offered("websocket", "websocket"));
  EXPECT_TRUE(upgrade_was_offered("h2c, WebSocket", "websocket"));
  EXPECT_FALSE(upgrade_was_offered("websocket", ""));         // no Upgrade: what did it switch to?
  EXPECT_FALSE(upgrade_was_offered("websocket", "h2c"));      // not offered
  EXPECT_FALSE(upgrade_was_offered("websocket", "websocket, h2c"));
}

namespace frontdoor::http {
namespace {  // the same unnamed namespace as parse_ptr's

TEST(RequestHead, TheAsteriskFormIsForOptionsOnly) {
  EXPECT_EQ(parse_ptr("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")->status, ParseStatus::complete);
  EXPECT_EQ(parse_ptr("GET * HTTP/1.1\r\nHost: x\r\n\r\n")->status, ParseStatus::error);
  EXPECT_EQ(parse_ptr("DELETE * HTTP/1.1\r\nHost: x\r\n\r\n")->status, ParseStatus::error);
}

}  // namespace
}  // namespace frontdoor::http
