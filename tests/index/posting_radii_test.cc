// How far each posting's appended primaries lie from its head (index/internal/posting_radii.h):
// radii only grow until measured again, a measurement taken before a growth is not applied, and
// the widest postings come first.
#include "index/internal/posting_radii.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace strata::internal {
namespace {

std::vector<std::pair<uint32_t, float>> WiderThan(const PostingRadii& r, float above) {
  std::vector<std::pair<uint32_t, float>> out;
  r.ForEachWiderThan(above, [&](uint32_t posting, float radius) {
    out.emplace_back(posting, radius);
    return true;
  });
  return out;
}

TEST(PostingRadii, GrowOnlyWidens) {
  PostingRadii r;
  EXPECT_EQ(r.Of(3), 0.0f);
  r.Grow(3, 2.0f);
  r.Grow(3, 1.0f);  // a nearer vector: no change
  EXPECT_EQ(r.Of(3), 2.0f);
  r.Grow(3, 5.0f);
  EXPECT_EQ(r.Of(3), 5.0f);
  EXPECT_EQ(r.size(), 1u);
  // The ordered view follows (no stale entry left at 2.0).
  EXPECT_EQ(WiderThan(r, 0.0f), (std::vector<std::pair<uint32_t, float>>{{3, 5.0f}}));
}

TEST(PostingRadii, ListsTheWidestFirstAboveABound) {
  PostingRadii r;
  r.Grow(1, 1.0f);
  r.Grow(2, 4.0f);
  r.Grow(3, 3.0f);
  r.Grow(4, 4.0f);
  EXPECT_EQ(WiderThan(r, 2.0f),
            (std::vector<std::pair<uint32_t, float>>{{4, 4.0f}, {2, 4.0f}, {3, 3.0f}}));
  EXPECT_TRUE(WiderThan(r, 4.0f).empty());  // strictly wider
  size_t visited = 0;
  r.ForEachWiderThan(0.0f, [&](uint32_t, float) { return ++visited < 2; });
  EXPECT_EQ(visited, 2u);  // stopped by the visitor
  r.Erase(2);
  r.Erase(9);  // not there: a no-op
  EXPECT_EQ(WiderThan(r, 2.0f), (std::vector<std::pair<uint32_t, float>>{{4, 4.0f}, {3, 3.0f}}));
  r.Clear();
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(WiderThan(r, -1.0f).empty());
}

TEST(PostingRadii, NarrowAppliesOnlyAMeasurementStillCurrent) {
  PostingRadii r;
  r.Grow(7, 6.0f);
  // Measured at 6, found 2: narrowed.
  r.Narrow(7, r.Stamp(7), /*radius=*/2.0f);
  EXPECT_EQ(r.Of(7), 2.0f);
  EXPECT_EQ(WiderThan(r, 0.0f), (std::vector<std::pair<uint32_t, float>>{{7, 2.0f}}));
  // A vector joined after the measurement, widening it: the measurement is stale, kept out.
  uint64_t stamp = r.Stamp(7);
  r.Grow(7, 3.0f);
  r.Narrow(7, stamp, /*radius=*/1.0f);
  EXPECT_EQ(r.Of(7), 3.0f);
  // One joined within the radius (no wider): stale all the same, or that vector would be left
  // beyond it.
  stamp = r.Stamp(7);
  r.Grow(7, 2.5f);
  EXPECT_EQ(r.Of(7), 3.0f);
  r.Narrow(7, stamp, /*radius=*/1.0f);
  EXPECT_EQ(r.Of(7), 3.0f);
  // A measurement never widens (Grow does that).
  r.Narrow(7, r.Stamp(7), 8.0f);
  EXPECT_EQ(r.Of(7), 3.0f);
  // No primary left: forgotten.
  r.Narrow(7, r.Stamp(7), 0.0f);
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(WiderThan(r, -1.0f).empty());
  // Gone and back: an old stamp does not match the new record, after as many Grow calls.
  r.Grow(8, 5.0f);
  stamp = r.Stamp(8);
  r.Erase(8);
  r.Grow(8, 5.0f);
  r.Narrow(8, stamp, 1.0f);
  EXPECT_EQ(r.Of(8), 5.0f);
}

}  // namespace
}  // namespace strata::internal
