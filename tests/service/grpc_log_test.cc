#include "service/grpc_log.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(LogRateLimiter, PassesABurstPerWindowAndCountsTheRest) {
  LogRateLimiter limiter(3, absl::Seconds(10));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  uint64_t dropped = 99;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Admit(t0 + absl::Seconds(i), &dropped)) << i;
    EXPECT_EQ(dropped, 0u);
  }
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter.Admit(t0 + absl::Seconds(9), &dropped));
  // The next window opens with the count of what the last one dropped.
  EXPECT_TRUE(limiter.Admit(t0 + absl::Seconds(10), &dropped));
  EXPECT_EQ(dropped, 5u);
  EXPECT_TRUE(limiter.Admit(t0 + absl::Seconds(11), &dropped));
  EXPECT_EQ(dropped, 0u);
  // A quiet spell: a window later, nothing was dropped.
  EXPECT_TRUE(limiter.Admit(t0 + absl::Seconds(100), &dropped));
  EXPECT_EQ(dropped, 0u);
}

}  // namespace
}  // namespace strata
