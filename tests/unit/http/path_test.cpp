#include "frontdoor/http/path.hpp"

#include <gtest/gtest.h>

namespace frontdoor::http {
namespace {

using Verdict = NormalizedPath::Verdict;

// The normalised target, "=" when unchanged, or "400: why".
std::string normalized(std::string_view target) {
  std::string storage;
  const auto r = normalize_path(target, storage);
  switch (r.verdict) {
    case Verdict::unchanged: return "=";
    case Verdict::rewritten: return std::string(r.target);
    case Verdict::invalid: return "400: " + std::string(r.why);
  }
  return "?";
}

TEST(NormalizePath, PlainPathsAreLeftAlone) {
  for (const char* t : {"/", "/shop/checkout/pay", "/a/b/?q=%2e%2e/../x", "/.well-known/acme", "/a/b.c/..d/",
                        "*", "?q=1", "/shop/checkout;a/pay", "/x/y/%2Fz"})
    EXPECT_EQ(normalized(t), "=") << t;
}

TEST(NormalizePath, DotSegmentsAreResolved) {
  EXPECT_EQ(normalized("/shop/x/../checkout/pay"), "/shop/checkout/pay");
  EXPECT_EQ(normalized("/shop/./checkout/pay"), "/shop/checkout/pay");
  EXPECT_EQ(normalized("/api/v1/../../shop/checkout/pay?x=/../y"), "/shop/checkout/pay?x=/../y");
  EXPECT_EQ(normalized("/a/b/."), "/a/b/");
  EXPECT_EQ(normalized("/a/b/.."), "/a/");
  EXPECT_EQ(normalized("/a/.."), "/");
  EXPECT_EQ(normalized("/."), "/");
  EXPECT_EQ(normalized("/./"), "/");
  EXPECT_EQ(normalized("/a/%2e%2E/b"), "/b");  // encoded dots are dots
  EXPECT_EQ(normalized("/a/.%2e/b"), "/b");
  EXPECT_EQ(normalized("/a/.../b"), "=");      // three dots: a name
}

TEST(NormalizePath, AboveTheRootIsRefused) {
  for (const char* t : {"/..", "/../a", "/a/../..", "/a/../../b", "//..", "/%2e%2e/etc/passwd"})
    EXPECT_EQ(normalized(t), "400: a \"..\" segment above the root") << t;
}

TEST(NormalizePath, SlashRunsAreMerged) {
  EXPECT_EQ(normalized("/shop//checkout/pay"), "/shop/checkout/pay");
  EXPECT_EQ(normalized("//shop/checkout"), "/shop/checkout");
  EXPECT_EQ(normalized("/a/b//"), "/a/b/");
  EXPECT_EQ(normalized("///"), "/");
}

TEST(NormalizePath, EscapesOfUnreservedCharactersAreDecoded) {
  EXPECT_EQ(normalized("/shop/%63heckout/pay"), "/shop/checkout/pay");
  EXPECT_EQ(normalized("/a/%7e%2D%5f%41%30"), "/a/~-_A0");
  EXPECT_EQ(normalized("/a/b/%2f%5c%20%e2%82%ac"), "/a/b/%2F%5C%20%E2%82%AC");  // others: upper-case hex
  EXPECT_EQ(normalized("/a/b/%2F"), "=");
}

TEST(NormalizePath, AmbiguousTargetsAreRefused) {
  EXPECT_EQ(normalized("/a/b#frag"), "400: a fragment (#) in the request target");
  EXPECT_EQ(normalized("/a/b?x#y"), "400: a fragment (#) in the request target");
  EXPECT_EQ(normalized("/a\\b"), "400: a backslash in the path");
  EXPECT_EQ(normalized("/a/b/c\\..\\d"), "400: a backslash in the path");
  for (const char* t : {"/a/%", "/a/%4", "/a/%zz", "/a/%4g/b"})
    EXPECT_EQ(normalized(t), "400: a malformed percent-escape in the path") << t;
  for (const char* t : {"/shop%2Fcheckout/pay", "/shop/check%2fout/pay", "/shop%5Ccheckout", "/x/../shop%2Fcheckout"})
    EXPECT_EQ(normalized(t), "400: an encoded slash in the path's first two segments") << t;
  EXPECT_EQ(normalized("/shop/checkout/a%2Fb"), "=");  // past the routing segments: the upstream's business
}

TEST(NormalizePath, StorageIsReusedAndNeverShrinks) {
  std::string storage;
  auto r = normalize_path("/a/./b/./c/./d", storage);
  ASSERT_EQ(r.verdict, Verdict::rewritten);
  EXPECT_EQ(r.target, "/a/b/c/d");
  const auto capacity = storage.size();
  r = normalize_path("/x/./y", storage);
  EXPECT_EQ(r.target, "/x/y");
  EXPECT_EQ(storage.size(), capacity);
}

}  // namespace
}  // namespace frontdoor::http
