// Who the client is: networks, X-Forwarded-For walked right to left past trusted proxies only.
#include "frontdoor/server/client_address.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace frontdoor::server {
namespace {

namespace ip = boost::asio::ip;

NetworkSet networks(std::initializer_list<const char*> texts) {
  std::vector<Network> out;
  for (const char* t : texts) {
    auto n = Network::parse(t);
    EXPECT_TRUE(n) << t;
    if (n) out.push_back(*n);
  }
  return NetworkSet(std::move(out));
}

std::string client_of(const char* peer, std::vector<std::string> forwarded, const NetworkSet& trusted) {
  std::vector<http::Header> headers;
  for (const auto& v : forwarded) headers.push_back({"X-Forwarded-For", v, http::HeaderKind::x_forwarded_for});
  headers.push_back({"Host", "h", http::HeaderKind::host});
  return client_address(ip::make_address(peer), headers, trusted).to_string();
}

TEST(Network, ParsesAndMatchesBothFamilies) {
  const auto ten = Network::parse("10.0.0.0/8");
  ASSERT_TRUE(ten);
  EXPECT_TRUE(ten->contains(ip::make_address("10.200.3.4")));
  EXPECT_FALSE(ten->contains(ip::make_address("11.0.0.1")));
  EXPECT_TRUE(ten->contains(ip::make_address("::ffff:10.1.2.3"))) << "an IPv4-mapped address is IPv4";
  const auto doc = Network::parse("2001:db8::/32");
  ASSERT_TRUE(doc);
  EXPECT_TRUE(doc->contains(ip::make_address("2001:db8:1::5")));
  EXPECT_FALSE(doc->contains(ip::make_address("2001:db9::1")));
  EXPECT_FALSE(doc->contains(ip::make_address("10.0.0.1")));
  const auto host = Network::parse("192.0.2.7");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->contains(ip::make_address("192.0.2.7")));
  EXPECT_FALSE(host->contains(ip::make_address("192.0.2.8")));
  EXPECT_TRUE(Network::parse("0.0.0.0/0")->contains(ip::make_address("203.0.113.9")));
  for (const char* bad : {"10.0.0.0/33", "10.0.0/8", "fe80::1%eth0", "2001:db8::/129", "x", "10.0.0.0/", "10.0.0.0/8x", ""})
    EXPECT_FALSE(Network::parse(bad)) << bad;
}

TEST(ClientAddress, UntrustedPeerIsTheClientWhateverItClaims) {
  const auto trusted = networks({"10.0.0.0/8"});
  EXPECT_EQ(client_of("203.0.113.5", {"198.51.100.1"}, trusted), "203.0.113.5");
  EXPECT_EQ(client_of("203.0.113.5", {"198.51.100.1"}, NetworkSet()), "203.0.113.5");
}

TEST(ClientAddress, RightMostUntrustedEntryBehindTrustedProxies) {
  const auto trusted = networks({"10.0.0.0/8"});
  // client 198.51.100.7 -> proxy 10.0.0.2 -> proxy 10.0.0.3 -> us; the client lied to the left.
  EXPECT_EQ(client_of("10.0.0.3", {"1.2.3.4, 198.51.100.7, 10.0.0.2"}, trusted), "198.51.100.7");
  // Repeated fields are one list, in order.
  EXPECT_EQ(client_of("10.0.0.3", {"1.2.3.4", "198.51.100.7", "10.0.0.2"}, trusted), "198.51.100.7");
  // Ports and brackets as some balancers write them.
  EXPECT_EQ(client_of("10.0.0.3", {"198.51.100.7:41234"}, trusted), "198.51.100.7");
  EXPECT_EQ(client_of("10.0.0.3", {"[2001:db8::7]:443"}, trusted), "2001:db8::7");
  EXPECT_EQ(client_of("10.0.0.3", {"2001:db8::8"}, trusted), "2001:db8::8");
}

TEST(ClientAddress, GarbageOrTooManyHopsStopAtTheLastTrusted) {
  const auto trusted = networks({"10.0.0.0/8"});
  EXPECT_EQ(client_of("10.0.0.3", {"not-an-address, 10.0.0.2"}, trusted), "10.0.0.2");
  EXPECT_EQ(client_of("10.0.0.3", {"198.51.100.7, , 10.0.0.2"}, trusted), "10.0.0.2");
  EXPECT_EQ(client_of("10.0.0.3", {}, trusted), "10.0.0.3") << "no header: the peer";
  std::string many;
  for (int i = 0; i < 40; ++i) many += "10.0.0." + std::to_string(i) + (i < 39 ? ", " : "");
  EXPECT_EQ(client_of("10.0.0.250", {"198.51.100.7, " + many}, trusted), "10.0.0.8")
      << "the walk stops after kMaxForwardedHops entries";
  EXPECT_EQ(client_of("10.0.0.3", {"10.0.0.1, 10.0.0.2"}, trusted), "10.0.0.1") << "all trusted: the left-most";
}

TEST(FormatAddress, MappedIpv4IsWrittenAsIpv4) {
  char out[46];
  EXPECT_EQ(std::string(out, format_address(ip::make_address("::ffff:192.0.2.1"), out, sizeof out)), "192.0.2.1");
  EXPECT_EQ(std::string(out, format_address(ip::make_address("2001:db8::1"), out, sizeof out)), "2001:db8::1");
  EXPECT_EQ(format_address(ip::make_address("2001:db8::1"), out, 3), 0u);
}

}  // namespace
}  // namespace frontdoor::server
