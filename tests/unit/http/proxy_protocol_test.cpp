// The PROXY protocol header, v1 and v2: complete, incomplete, refused.
#include "frontdoor/http/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <string>

namespace frontdoor::http {
namespace {

const std::string kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

TEST(ProxyProtocol, Version1) {
  ProxyHeader h;
  const std::string v4 = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
  ASSERT_EQ(parse_proxy_header(v4, h), ProxyHeaderStatus::complete);
  EXPECT_EQ(h.bytes, v4.find("GET"));
  EXPECT_FALSE(h.local);
  EXPECT_EQ(h.source.to_string(), "192.0.2.1");
  EXPECT_EQ(h.source_port, 56324);
  ASSERT_EQ(parse_proxy_header("PROXY TCP6 2001:db8::1 2001:db8::2 1 443\r\n", h), ProxyHeaderStatus::complete);
  EXPECT_EQ(h.source.to_string(), "2001:db8::1");
  ASSERT_EQ(parse_proxy_header("PROXY UNKNOWN\r\n", h), ProxyHeaderStatus::complete);
  EXPECT_TRUE(h.local);
  for (std::size_t n = 0; n < v4.find("\r\n") + 1; ++n)
    EXPECT_EQ(parse_proxy_header(v4.substr(0, n), h), ProxyHeaderStatus::incomplete) << n;
}

TEST(ProxyProtocol, Version1Refusals) {
  ProxyHeader h;
  for (const char* bad : {"GET / HTTP/1.1\r\n\r\n", "PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n",
                          "PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", "PROXY TCP4 192.0.2.1 198.51.100.1 65536 2\r\n",
                          "PROXY TCP5 192.0.2.1 198.51.100.1 1 2\r\n", "PROXY TCP4 192.0.2.1 198.51.100.1 1 2 3\r\n",
                          "proxy TCP4 192.0.2.1 198.51.100.1 1 2\r\n"})
    EXPECT_EQ(parse_proxy_header(bad, h), ProxyHeaderStatus::error) << bad;
  EXPECT_EQ(parse_proxy_header("PROXY " + std::string(120, 'x'), h), ProxyHeaderStatus::error) << "no CRLF in 107 bytes";
}

TEST(ProxyProtocol, Version2) {
  ProxyHeader h;
  std::string v4 = kV2Signature + std::string("\x21\x11\x00\x0c", 4) + std::string("\xc0\x00\x02\x01", 4) +
                   std::string("\xc6\x33\x64\x01", 4) + std::string("\xdc\x04\x01\xbb", 4) + "GET";
  ASSERT_EQ(parse_proxy_header(v4, h), ProxyHeaderStatus::complete);
  EXPECT_EQ(h.bytes, 28u);
  EXPECT_EQ(h.source.to_string(), "192.0.2.1");
  EXPECT_EQ(h.source_port, 0xdc04);
  for (std::size_t n = 0; n < 28; ++n) EXPECT_EQ(parse_proxy_header(v4.substr(0, n), h), ProxyHeaderStatus::incomplete);
  // TLVs after the addresses (AWS NLB adds one) are skipped with them.
  std::string tlv = v4.substr(0, 28);
  tlv[15] = 12 + 7;
  tlv += std::string("\xea\x00\x04vpce", 7);
  ASSERT_EQ(parse_proxy_header(tlv, h), ProxyHeaderStatus::complete);
  EXPECT_EQ(h.bytes, 35u);
  const std::string local = kV2Signature + std::string("\x20\x00\x00\x00", 4);
  ASSERT_EQ(parse_proxy_header(local, h), ProxyHeaderStatus::complete);
  EXPECT_TRUE(h.local);
  EXPECT_EQ(parse_proxy_header(kV2Signature + std::string("\x31\x11\x00\x0c", 4), h), ProxyHeaderStatus::error)
      << "version 3";
  EXPECT_EQ(parse_proxy_header(kV2Signature + std::string("\x21\x11\x00\x04", 4) + "abcd", h), ProxyHeaderStatus::error)
      << "too short for IPv4 addresses";
  EXPECT_EQ(parse_proxy_header(kV2Signature + std::string("\x21\x11\xff\xff", 4), h), ProxyHeaderStatus::error)
      << "longer than kMaxProxyV2Bytes";
}

}  // namespace
}  // namespace frontdoor::http
