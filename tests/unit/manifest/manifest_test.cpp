#include "frontdoor/manifest/manifest.hpp"

#include <gtest/gtest.h>

namespace frontdoor::manifest {
namespace {

Manifest make(std::string p, std::string m, std::string e) {
  Manifest out;
  out.project = std::move(p);
  out.module = std::move(m);
  out.environment = std::move(e);
  return out;
}

TEST(ManifestTable, MostSpecificMatchWins) {
  ManifestTable table({make("shop", "cart", "prod"), make("shop", "cart", "*"), make("shop", "*", "*"),
                       make("*", "*", "*")});
  EXPECT_EQ(table.find("shop", "cart", "prod")->index, 0u);
  EXPECT_EQ(table.find("shop", "cart", "staging")->index, 1u);
  EXPECT_EQ(table.find("shop", "search", "prod")->index, 2u);
  EXPECT_EQ(table.find("blog", "x", "prod")->index, 3u);
}

TEST(ManifestTable, NoMatchIsNull) {
  ManifestTable table({make("shop", "cart", "prod")});
  EXPECT_EQ(table.find("shop", "cart", "staging"), nullptr);
  EXPECT_EQ(table.find("", "", "prod"), nullptr);
  EXPECT_EQ(table.find(std::string(600, 'a'), "cart", "prod"), nullptr);
}

TEST(SplitRoute, Segments) {
  auto k = split_route("/shop/cart/items/3?x=1");
  EXPECT_EQ(k.project, "shop");
  EXPECT_EQ(k.module, "cart");
  EXPECT_EQ(k.rest, "/items/3?x=1");
  k = split_route("/shop/cart?x=1");
  EXPECT_EQ(k.module, "cart");
  EXPECT_EQ(k.rest, "?x=1");
  k = split_route("/shop/cart");
  EXPECT_EQ(k.rest, "");
  k = split_route("/shop");
  EXPECT_EQ(k.project, "shop");
  EXPECT_EQ(k.module, "");
  k = split_route("http://host:80/a/b/c");
  EXPECT_EQ(k.project, "a");
  EXPECT_EQ(k.module, "b");
  EXPECT_EQ(k.rest, "/c");
  k = split_route("*");
  EXPECT_EQ(k.project, "");
  // Path parameters are not part of a segment's name (Tomcat strips them before it routes).
  k = split_route("/shop;v=1/checkout;jsessionid=x/pay");
  EXPECT_EQ(k.project, "shop");
  EXPECT_EQ(k.module, "checkout");
  EXPECT_EQ(k.rest, "/pay");
}

}  // namespace
}  // namespace frontdoor::manifest
