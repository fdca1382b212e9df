#include <gtest/gtest.h>
#include <stdlib.h>

#include "frontdoor/store/manifest_sql.hpp"
#include "frontdoor/store/store_settings.hpp"

namespace frontdoor::store {
namespace {

TEST(Change, RoundTripsAndRefusesWhatIsNotAKey) {
  const Change put{false, {"shop", "cart", "*"}, 7};
  EXPECT_EQ(put.payload(), "put shop cart * 7");
  const auto back = Change::parse(put.payload());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, put.key);
  EXPECT_EQ(back->version, 7u);
  EXPECT_FALSE(back->deleted);
  EXPECT_TRUE(Change::parse("delete a b c 1")->deleted);
  for (const char* bad : {"", "put", "put a b c", "put a b c 0", "put a b c -1", "put a b c 1 extra", "move a b c 1",
                          "put a/x b c 1", "put a b c 99999999999999999999999", "put a  c 1", "put a b c\n 1",
                          "put a b \xff 1"})
    EXPECT_FALSE(Change::parse(bad)) << bad;
}

TEST(StoredKeys, SplitJoined) {
  EXPECT_EQ(split_key("a/b/*")->environment, "*");
  EXPECT_FALSE(split_key("a/b"));
  EXPECT_FALSE(split_key("a/b/c/d"));
  EXPECT_FALSE(split_key("a//c"));
}

TEST(RedisManifest, VersionLineThenDocument) {
  const auto value = redis_manifest_value(12, "{\"project\":\"a\"}");
  const auto parsed = parse_redis_manifest(value);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->version, 12u);
  EXPECT_EQ(parsed->document, "{\"project\":\"a\"}");
  for (const char* bad : {"", "12", "\n{}", "x\n{}", "0\n{}", "12x\n{}"}) EXPECT_FALSE(parse_redis_manifest(bad)) << bad;
  EXPECT_EQ(redis_manifest_key("fd:", "a/b/c"), "fd:manifest:a/b/c");
}

TEST(ConnectionStrings, TimeoutsAreAddedToEitherFormUnlessNamed) {
  config::PostgresConfig pg;
  pg.dsn = "host=/tmp/x port=5 user=u dbname=d connect_timeout=9";
  std::string error;
  auto dsn = connection_strings(pg, error);
  ASSERT_TRUE(dsn) << error;
  EXPECT_NE(dsn->primary.find("connect_timeout='9'"), std::string::npos) << dsn->primary;
  EXPECT_NE(dsn->primary.find("keepalives='1'"), std::string::npos);
  EXPECT_NE(dsn->primary.find("tcp_user_timeout="), std::string::npos);
  EXPECT_EQ(dsn->listen, dsn->primary);
  EXPECT_TRUE(dsn->replica.empty());
  pg.dsn = "postgresql://u:p%27w@db.example:5433/d?sslmode=require";
  dsn = connection_strings(pg, error);
  ASSERT_TRUE(dsn);
  EXPECT_NE(dsn->primary.find("password='p\\'w'"), std::string::npos) << dsn->primary;
  EXPECT_NE(dsn->primary.find("connect_timeout='2'"), std::string::npos);
}

TEST(ConnectionStrings, AMissingSecretIsAnErrorNamingIt) {
  config::PostgresConfig pg;
  pg.dsn_env = "FRONTDOOR_TEST_SURELY_UNSET_DSN";
  std::string error;
  EXPECT_FALSE(connection_strings(pg, error));
  EXPECT_NE(error.find("FRONTDOOR_TEST_SURELY_UNSET_DSN, which is not set"), std::string::npos) << error;
  pg = {};
  pg.dsn_file = "/nonexistent/dsn";
  EXPECT_FALSE(connection_strings(pg, error));
  EXPECT_NE(error.find("cannot be read"), std::string::npos) << error;
  ::setenv("FRONTDOOR_TEST_DSN", "host=h dbname=d", 1);
  pg = {};
  pg.dsn_env = "FRONTDOOR_TEST_DSN";
  auto dsn = connection_strings(pg, error);
  ASSERT_TRUE(dsn);
  EXPECT_NE(dsn->primary.find("host='h'"), std::string::npos);
}

}  // namespace
}  // namespace frontdoor::store
