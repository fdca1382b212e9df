// The JSON the daemon writes (/status.json, reload results, the SIGUSR1 line) parses whatever bytes
// a name or an echoed config value holds.
#include <gtest/gtest.h>

#include "frontdoor/core/utf8.hpp"
#include "frontdoor/server/json.hpp"

namespace frontdoor::server {
namespace {

TEST(JsonString, EscapesAndKeepsUtf8) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("line\nnext"), "\"line\\u000anext\"");
  EXPECT_EQ(json_string("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\"");
}

TEST(JsonString, BytesThatAreNotUtf8BecomeTheReplacementCharacter) {
  EXPECT_EQ(json_string("cut \xc3"), "\"cut \\ufffd\"");                 // a sequence cut short
  EXPECT_EQ(json_string("\xff\xfe"), "\"\\ufffd\\ufffd\"");               // never UTF-8
  EXPECT_EQ(json_string("\xc0\xaf"), "\"\\ufffd\\ufffd\"");               // overlong '/'
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");    // a surrogate
}

TEST(Utf8Sequence, LengthsOfWellFormedSequencesOnly) {
  EXPECT_EQ(core::utf8_sequence("a", 0), 1u);
  EXPECT_EQ(core::utf8_sequence("\xc3\xa9", 0), 2u);
  EXPECT_EQ(core::utf8_sequence("\xe2\x82\xac", 0), 3u);
  EXPECT_EQ(core::utf8_sequence("\xf0\x9f\x98\x80", 0), 4u);
  EXPECT_EQ(core::utf8_sequence("\xf4\x90\x80\x80", 0), 0u);  // past U+10FFFF
  EXPECT_EQ(core::utf8_sequence("\xe2\x82", 0), 0u);
}

}  // namespace
}  // namespace frontdoor::server
