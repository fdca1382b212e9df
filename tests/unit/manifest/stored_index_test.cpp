#include <gtest/gtest.h>

#include "frontdoor/manifest/manifest.hpp"

namespace frontdoor::manifest {
namespace {

StoredEntry entry(std::string key, std::int32_t manifest) {
  StoredEntry e;
  e.key = std::move(key);
  e.manifest = manifest;
  return e;
}

TEST(StoredIndex, MostSpecificStoredKeyWinsByTheTablesRules) {
  StoredIndex index;
  index.add("shop", "cart", "prod", entry("shop/cart/prod", 0));
  index.add("shop", "*", "*", entry("shop/*/*", 1));
  index.add("*", "cart", "*", entry("*/cart/*", 2));
  EXPECT_EQ(index.find("shop", "cart", "prod")->key, "shop/cart/prod");
  EXPECT_EQ(index.find("shop", "cart", "staging")->key, "shop/*/*");  // project weighs most
  EXPECT_EQ(index.find("blog", "cart", "prod")->key, "*/cart/*");
  EXPECT_EQ(index.find("blog", "search", "prod"), nullptr);
  EXPECT_EQ(index.size(), 3u);
}

TEST(StoredIndex, OverlongOrOddRequestKeysOnlyMatchWildcards) {
  StoredIndex index;
  index.add("shop", "cart", "prod", entry("shop/cart/prod", 0));
  EXPECT_EQ(index.find(std::string(600, 's'), "cart", "prod"), nullptr);
  index.add("*", "*", "*", entry("*/*/*", 1));
  EXPECT_EQ(index.find(std::string(600, 's'), "cart", "prod")->key, "*/*/*");
  EXPECT_EQ(index.find("shop\x1f" "cart", "prod", ""), index.find("x", "y", "z"));
}

TEST(ManifestTable, OnlySearchableManifestsAreFound) {
  std::vector<Manifest> all(3);
  all[0].project = all[1].project = all[2].project = "shop";
  all[0].module = "cart";
  all[1].module = all[2].module = "*";
  all[0].environment = all[1].environment = all[2].environment = "*";
  ManifestTable table(std::move(all), 1);  // the last two are the store's: reached by index only
  EXPECT_EQ(table.find("shop", "cart", "x")->index, 0u);
  EXPECT_EQ(table.find("shop", "search", "x"), nullptr);
  EXPECT_EQ(table.manifests()[2].index, 2u);
}

}  // namespace
}  // namespace frontdoor::manifest
