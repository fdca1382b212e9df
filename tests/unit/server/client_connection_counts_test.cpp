// Open connections per client (server.max_connections_per_client): who counts as one client, the
// cap, and every slot coming back however it ends.
#include "frontdoor/server/client_connection_counts.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace frontdoor::server {
namespace {

using boost::asio::ip::make_address;

TEST(ClientConnectionCounts, TakesUpToTheCapAndGivesBackWhenASlotEnds) {
  ClientConnectionCounts counts;
  const auto client = make_address("192.0.2.7");
  std::vector<ClientConnectionCounts::Slot> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(counts.try_take(client, 3));
    EXPECT_TRUE(held.back());
  }
  EXPECT_FALSE(counts.try_take(client, 3));  // a refusal holds nothing
  EXPECT_EQ(counts.open(client), 3u);
  EXPECT_TRUE(counts.try_take(make_address("192.0.2.8"), 3));  // another client: its own count
  held.pop_back();                                             // a connection closes
  EXPECT_EQ(counts.open(client), 2u);
  EXPECT_TRUE(counts.try_take(client, 3));  // taken and given back at once (a temporary)
  held.clear();
  EXPECT_EQ(counts.open(client), 0u);
  EXPECT_EQ(counts.clients(), 0u);  // nothing kept for clients with nothing open
}

TEST(ClientConnectionCounts, ASlotMovesWithItsConnectionAndIsGivenBackOnce) {
  ClientConnectionCounts counts;
  const auto client = make_address("192.0.2.7");
  auto session_slot = counts.try_take(client, 1);
  ClientConnectionCounts::Slot parked = std::move(session_slot);  // parked between requests
  EXPECT_FALSE(session_slot);
  session_slot.reset();  // the recycled session gives back nothing
  EXPECT_EQ(counts.open(client), 1u);
  session_slot = std::move(parked);  // resumed
  parked.reset();
  EXPECT_EQ(counts.open(client), 1u);
  session_slot.reset();
  session_slot.reset();
  EXPECT_EQ(counts.open(client), 0u);
  session_slot = counts.try_take(client, 1);
  session_slot = counts.try_take(make_address("192.0.2.9"), 1);  // assigning over a slot gives it back
  EXPECT_EQ(counts.open(client), 0u);
}

TEST(ClientConnectionCounts, OneClientIsAnIPv4AddressOrAnIPv6Slash64) {
  EXPECT_EQ(ClientConnectionCounts::key_of(make_address("198.51.100.1")),
            ClientConnectionCounts::key_of(make_address("::ffff:198.51.100.1")));
  EXPECT_NE(ClientConnectionCounts::key_of(make_address("198.51.100.1")),
            ClientConnectionCounts::key_of(make_address("198.51.100.2")));
  EXPECT_EQ(ClientConnectionCounts::key_of(make_address("2001:db8:1:2::1")),
            ClientConnectionCounts::key_of(make_address("2001:db8:1:2:ffff:ffff:ffff:ffff")));
  EXPECT_NE(ClientConnectionCounts::key_of(make_address("2001:db8:1:2::1")),
            ClientConnectionCounts::key_of(make_address("2001:db8:1:3::1")));
  // An IPv6 /64 whose bits spell an IPv4 address is still another client.
  EXPECT_NE(ClientConnectionCounts::key_of(make_address("::c633:6401")),
            ClientConnectionCounts::key_of(make_address("198.51.100.1")));

  // The log names the client as the cap sees it.
  EXPECT_EQ(ClientConnectionCounts::describe(make_address("2001:db8:1:2::5")), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientConnectionCounts::describe(make_address("::ffff:192.0.2.1")), "192.0.2.1");

  ClientConnectionCounts counts;
  auto a = counts.try_take(make_address("2001:db8::1"), 2);
  auto b = counts.try_take(make_address("2001:db8::2"), 2);
  EXPECT_TRUE(a && b);
  EXPECT_FALSE(counts.try_take(make_address("2001:db8::3"), 2));  // same /64: the same client
  EXPECT_TRUE(counts.try_take(make_address("2001:db8:0:1::1"), 2));
}

TEST(ClientConnectionCounts, WorkersOpeningAndClosingAtOnceLeaveNothingBehind) {
  ClientConnectionCounts counts;
  const auto client = make_address("203.0.113.5");
  std::atomic<int> refused{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      std::vector<ClientConnectionCounts::Slot> mine;
      for (int i = 0; i < 20000; ++i) {
        const auto other = make_address("203.0.113." + std::to_string(10 + (i + w) % 50));
        if (i % 8 == 7) mine.clear();
        auto slot = counts.try_take(i % 2 ? client : other, 3);
        if (!slot) ++refused;
        else mine.push_back(std::move(slot));
        EXPECT_LE(counts.open(client), 3u);
      }
    });
  for (auto& t : workers) t.join();
  EXPECT_GT(refused.load(), 0);  // the cap was reached, across threads
  EXPECT_EQ(counts.open(client), 0u);
  EXPECT_EQ(counts.clients(), 0u);
}

}  // namespace
}  // namespace frontdoor::server
