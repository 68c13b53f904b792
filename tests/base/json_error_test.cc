#include "base/json_error.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(JsonSyntaxError, SaysWhereAndWhyWithoutQuotingTheText) {
  EXPECT_EQ(JsonSyntaxError("{not json"), "a syntax error at byte 3 of 9");  // (1-based)
  EXPECT_EQ(JsonSyntaxError(R"({"id": 1, "text": "cut)"),
            "a syntax error at its end (it stops short)");
  // An invalid UTF-8 byte in a string: named as such, and never quoted.
  const std::string bad = "{\"text\":\"a\xff\xfe b\"}";
  const std::string why = JsonSyntaxError(bad);
  EXPECT_EQ(why.rfind("bytes that are not UTF-8 at byte ", 0), 0u) << why;
  EXPECT_EQ(why.find('\xff'), std::string::npos);
  EXPECT_EQ(JsonSyntaxError("[1, 2]"), "it parses");
  // What a stranger sent: a number past a double, and a lone escaped surrogate.
  EXPECT_EQ(JsonSyntaxError("{\"a\":1e999}"), "a number too large for a double");
  const std::string lone = JsonSyntaxError("{\"a\":\"\\ud800\"}");
  EXPECT_EQ(lone.rfind("half of a \\u surrogate pair at byte ", 0), 0u) << lone;
}

}  // namespace
}  // namespace strata
