#include "service/tenant_rate_limiter.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(TenantRateLimiter, BurstsToItsRateThenRefillsWithTime) {
  TenantRateLimiter::Clock::time_point now{};
  TenantRateLimiter limiter([&] { return now; });
  // 3 per second: three at once, then one per third of a second.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("u1", "docs", "a", 3).ok()) << i;
  absl::Status refused = limiter.Admit("u1", "docs", "a", 3);
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_NE(refused.message().find("max_requests_per_second"), absl::string_view::npos);
  EXPECT_NE(refused.message().find("'a'"), absl::string_view::npos);
  // Another tenant, and the same name in another collection, have buckets of their own.
  EXPECT_TRUE(limiter.Admit("u1", "docs", "b", 3).ok());
  EXPECT_TRUE(limiter.Admit("u2", "docs", "a", 3).ok());
  now += std::chrono::milliseconds(340);
  EXPECT_TRUE(limiter.Admit("u1", "docs", "a", 3).ok());
  EXPECT_FALSE(limiter.Admit("u1", "docs", "a", 3).ok());
  // A long pause refills one second's worth, no more.
  now += std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("u1", "docs", "a", 3).ok()) << i;
  EXPECT_FALSE(limiter.Admit("u1", "docs", "a", 3).ok());
  // A rate under one per second still allows one call, then one per 1/rate seconds.
  EXPECT_TRUE(limiter.Admit("u1", "docs", "slow", 0.5).ok());
  now += std::chrono::seconds(1);
  EXPECT_FALSE(limiter.Admit("u1", "docs", "slow", 0.5).ok());
  now += std::chrono::milliseconds(1001);
  EXPECT_TRUE(limiter.Admit("u1", "docs", "slow", 0.5).ok());
  // No quota: always admitted.
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.Admit("u1", "docs", "free", 0).ok());
}

}  // namespace
}  // namespace strata
