// The decoder's device tier of passage KV entries: LRU under a byte budget.
#include "gpu/internal/device_span_cache.h"

#include <gtest/gtest.h>

namespace strata::gpu {
namespace {

DeviceSpanCache::Entry Sized(size_t bytes) {
  DeviceSpanCache::Entry e;
  e.bytes = bytes;
  e.layer1_k = {static_cast<float>(bytes)};
  return e;
}

TEST(DeviceSpanCache, KeepsTheMostRecentlyUsedWithinItsBudget) {
  DeviceSpanCache c(100);
  ASSERT_NE(c.Insert(1, Sized(40)), nullptr);
  ASSERT_NE(c.Insert(2, Sized(40)), nullptr);
  ASSERT_NE(c.Find(1), nullptr);  // 1 is now the most recent: 2 goes first
  ASSERT_NE(c.Insert(3, Sized(40)), nullptr);
  EXPECT_EQ(c.Find(2), nullptr);
  ASSERT_NE(c.Find(1), nullptr);
  EXPECT_EQ(c.Find(1)->layer1_k[0], 40.0f);
  EXPECT_NE(c.Find(3), nullptr);
  EXPECT_EQ(c.bytes(), 80u);
  EXPECT_EQ(c.entries(), 2u);
  // Replacing an entry frees the old one's bytes.
  ASSERT_NE(c.Insert(3, Sized(60)), nullptr);
  EXPECT_EQ(c.bytes(), 100u);
  EXPECT_EQ(c.Find(3)->layer1_k[0], 60.0f);
}

TEST(DeviceSpanCache, RefusesWhatCannotFitAndTheEmptyUid) {
  DeviceSpanCache c(100);
  ASSERT_NE(c.Insert(1, Sized(50)), nullptr);
  EXPECT_EQ(c.Insert(2, Sized(101)), nullptr);
  EXPECT_NE(c.Find(1), nullptr);  // a refused entry evicts nothing
  EXPECT_EQ(c.Insert(0, Sized(10)), nullptr);
  DeviceSpanCache off(0);
  EXPECT_EQ(off.Insert(1, Sized(1)), nullptr);
  EXPECT_EQ(off.entries(), 0u);
}

}  // namespace
}  // namespace strata::gpu
