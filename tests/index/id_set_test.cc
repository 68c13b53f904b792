// IdSet (index/id_set.h): both forms against std::set, through growth, thinning and regrowth.
#include "index/id_set.h"

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(IdSet, MatchesStdSetThroughBothForms) {
  std::mt19937_64 rng(5);
  IdSet set;
  std::set<uint32_t> model;
  bool was_dense = false, was_sparse_again = false;
  for (int round = 0; round < 400; ++round) {
    // Phases: grow dense over a small range, then thin out, then sparse over a wide range.
    const uint32_t range = round < 150 ? 8000 : round < 300 ? 8000 : 4000000;
    const bool insert = round < 150 || (round >= 300 && rng() % 3 != 0);
    std::vector<uint32_t> ids(1 + rng() % 200);
    for (uint32_t& id : ids) id = static_cast<uint32_t>(rng() % range);
    uint64_t expect = 0;
    for (uint32_t id : ids) {
      expect += insert ? model.insert(id).second : model.erase(id);
    }
    EXPECT_EQ(insert ? set.Insert(ids) : set.Erase(ids), expect);
    ASSERT_EQ(set.size(), model.size());
    was_dense |= set.dense();
    was_sparse_again |= was_dense && !set.dense();
    for (int probe = 0; probe < 50; ++probe) {
      const uint32_t id = static_cast<uint32_t>(rng() % range);
      ASSERT_EQ(set.Contains(id), model.count(id) == 1) << id;
    }
    // Every member and its neighbours (the fences' block edges among them), against the plain
    // binary search too.
    for (uint32_t m : model) {
      for (uint32_t id : {m - 1, m, m + 1}) {
        ASSERT_EQ(set.Contains(id), model.count(id) == 1) << id;
        ASSERT_EQ(set.ContainsReference(id), model.count(id) == 1) << id;
      }
    }
    ASSERT_FALSE(set.Contains(UINT32_MAX));
  }
  EXPECT_TRUE(was_dense);
  EXPECT_TRUE(was_sparse_again);
  EXPECT_EQ(set.ToVector(), std::vector<uint32_t>(model.begin(), model.end()));
}

}  // namespace
}  // namespace strata
