#include "service/call_budget.h"

#include <string>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(MemoryBudget, ReservesUpToItsCapacityAndCountsRefusals) {
  MemoryBudget pool(1000);
  EXPECT_TRUE(pool.TryReserve(600));
  EXPECT_TRUE(pool.TryReserve(400));
  EXPECT_FALSE(pool.TryReserve(1));
  EXPECT_EQ(pool.used(), 1000u);
  pool.Release(500);
  EXPECT_TRUE(pool.TryReserve(500));
  EXPECT_FALSE(pool.TryReserve(UINT64_MAX));  // no overflow
  EXPECT_EQ(pool.peak(), 1000u);
  EXPECT_EQ(pool.refusals(), 2u);
}

TEST(CallBudget, AResponseStopsAtTheMessageLimitAndEverythingIsReleased) {
  MemoryBudget pool(1 << 20);
  {
    CallBudget call(&pool, 1000);
    ASSERT_TRUE(call.Reserve(100).ok());
    for (int i = 0; i < 9; ++i) ASSERT_TRUE(call.AddResponse(100, "row", "ask for less").ok());
    absl::Status s = call.AddResponse(200, "row 9", "ask for less");
    EXPECT_TRUE(absl::IsResourceExhausted(s));
    EXPECT_NE(s.message().find("message limit"), std::string::npos) << s;
    EXPECT_NE(s.message().find("at row 9; ask for less"), std::string::npos) << s;
    EXPECT_EQ(call.response_bytes(), 900u);
    // Memory: the request, and each row twice over plus the message overhead.
    EXPECT_EQ(pool.used(), 100u + 9 * (200 + CallBudget::kMessageOverhead));
  }
  EXPECT_EQ(pool.used(), 0u);
}

// A batch is refused once its first kPartsToProject parts, with the least each other part must
// take, pass the limit; one they do not pass is built until it stops at the limit.
TEST(CallBudget, ABatchThatCannotFitIsRefusedFromItsFirstParts) {
  MemoryBudget pool(1 << 20);
  CallBudget call(&pool, 100000);
  const uint64_t parts = CallBudget::kPartsToProject;
  for (uint64_t i = 0; i < parts; ++i) {
    ASSERT_TRUE(call.AddResponse(1000, "hit", "ask for less").ok());
    // Too few parts yet to tell (and a finished batch has nothing left to refuse).
    if (i + 1 < parts) {
      EXPECT_TRUE(call.CheckFloor(i + 1, 1000, 1000, "queries", "less").ok());
    }
  }
  EXPECT_TRUE(call.CheckFloor(parts, parts, 1000000, "queries", "less").ok());
  // 32,000 bytes so far; 68 more parts of at least 1,000 bytes come to 100,000: not past it.
  EXPECT_TRUE(call.CheckFloor(parts, 100, 1000, "queries", "less").ok());
  const absl::Status s = call.CheckFloor(parts, 101, 1000, "queries' answers", "ask for less");
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_NE(s.message().find("the first 32 queries' answers came to 31 KiB, and the other 69 need "
                             "at least 1000 bytes each, at least 99 KiB in all; ask for less"),
            std::string::npos)
      << s;
}

// A message's bytes as a field of another: tag, length (a varint), body.
TEST(CallBudget, EmbeddedBytesCountTheTagAndTheLength) {
  EXPECT_EQ(CallBudget::EmbeddedBytes(0), 2u);
  EXPECT_EQ(CallBudget::EmbeddedBytes(127), 129u);
  EXPECT_EQ(CallBudget::EmbeddedBytes(128), 131u);
  EXPECT_EQ(CallBudget::EmbeddedBytes(16383), 16386u);
  EXPECT_EQ(CallBudget::EmbeddedBytes(16384), 16388u);
}

// Calls at once share the budget: the one that does not fit is refused ("retry later"); one
// that could never fit says so instead.
TEST(CallBudget, CallsShareTheServersBudget) {
  MemoryBudget pool(10000);
  CallBudget a(&pool, 1 << 20), b(&pool, 1 << 20);
  ASSERT_TRUE(a.Reserve(6000).ok());
  absl::Status s = b.Reserve(6000);
  EXPECT_TRUE(absl::IsResourceExhausted(s));
  EXPECT_NE(s.message().find("retry later"), std::string::npos) << s;
  s = b.Reserve(20000);
  EXPECT_NE(s.message().find("whole memory budget"), std::string::npos) << s;
  // A reservation handed over is no longer the call's to release.
  const uint64_t held = a.TakeReserved();
  EXPECT_EQ(held, 6000u);
  EXPECT_EQ(a.reserved(), 0u);
  EXPECT_EQ(pool.used(), 6000u);
  pool.Release(held);
  EXPECT_EQ(pool.used(), 0u);
}

}  // namespace
}  // namespace strata
