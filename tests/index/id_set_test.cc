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

// Sizes around the fences' block of 64 members (the last block short or whole), with 0 and
// UINT32_MAX among the members, then emptied by Erase and by Clear.
TEST(IdSet, SparseSetsOfEveryBlockEdgeAnswerExactly) {
  for (size_t n : {0, 1, 2, 63, 64, 65, 127, 128, 129, 1000}) {
    std::vector<uint32_t> ids;
    for (size_t i = 0; i < n; ++i) ids.push_back(static_cast<uint32_t>(i * 1000003 % 4000037));
    if (n >= 2) {
      ids[0] = 0;
      ids[1] = UINT32_MAX;
    }
    IdSet set;
    set.Insert(ids);
    ASSERT_FALSE(set.dense()) << n;
    const std::set<uint32_t> model(ids.begin(), ids.end());
    ASSERT_EQ(set.size(), model.size());
    const auto check = [&](uint32_t id) {
      ASSERT_EQ(set.Contains(id), model.count(id) == 1) << n << " members, id " << id;
    };
    for (uint32_t m : model) {
      check(m - 1);
      check(m);
      check(m + 1);
    }
    check(0);
    check(1);
    check(UINT32_MAX);
    check(UINT32_MAX - 1);
    set.Erase(ids);
    EXPECT_EQ(set.size(), 0u);
    for (uint32_t m : model) EXPECT_FALSE(set.Contains(m)) << m;
    set.Insert(ids);
    set.Clear();
    for (uint32_t m : model) EXPECT_FALSE(set.Contains(m)) << m;
  }
}

}  // namespace
}  // namespace strata
