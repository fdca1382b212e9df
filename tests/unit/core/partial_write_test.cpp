// What is left of a gather write (head, body) after a partial send.
#include "frontdoor/core/partial_write.hpp"

#include <gtest/gtest.h>

namespace frontdoor::core {
namespace {

TEST(KeepUnsent, PartOfTheHeadIsCopiedAndTheWholeBodyKept) {
  std::string head = "HTTP/1.1 200 OK\r\n\r\n";
  const std::string body = "hello";
  std::string spill = "stale";
  const auto rest = keep_unsent(spill, head, body, 5);
  EXPECT_EQ(spill, "1.1 200 OK\r\n\r\n");
  head.assign(head.size(), 'x');  // the scratch space is reused: the copy must not change
  EXPECT_EQ(spill, "1.1 200 OK\r\n\r\n");
  EXPECT_EQ(rest, "hello");
  EXPECT_EQ(rest.data(), body.data()) << "the body is not copied";
}

TEST(KeepUnsent, AfterTheHeadOnlyTheBodysRest) {
  std::string spill = "stale";
  EXPECT_EQ(keep_unsent(spill, "head", "body", 4), "body");
  EXPECT_EQ(spill, "");
  EXPECT_EQ(keep_unsent(spill, "head", "body", 6), "dy");
  EXPECT_EQ(spill, "");
  EXPECT_EQ(keep_unsent(spill, "head", "body", 0), "body");
  EXPECT_EQ(spill, "head");
}

}  // namespace
}  // namespace frontdoor::core
