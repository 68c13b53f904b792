// Hybrid fusion (index/fusion.h) against scores worked out by hand.
#include "index/fusion.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

std::vector<FusionCandidate> ThreeCandidates() {
  // id, dense distance, BM25, dense rank, lexical rank.
  return {{7, -0.9f, 2.0, 1, 2}, {8, -0.5f, 0.0, 2, 0}, {9, -0.1f, 6.0, 0, 1}};
}

TEST(Fusion, RelativeScoreNormalisesEachSideOverTheCandidates) {
  // Dense: -0.9 is the nearest (1), -0.1 the farthest (0), -0.5 half-way. BM25: 6 -> 1, 0 -> 0,
  // 2 -> 1/3.
  const auto hits = Fuse(ThreeCandidates(), {FusionMethod::kRelativeScore, 0.25}, 10);
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].candidate.id, 9u);  // 0.25 * 0 + 0.75 * 1
  EXPECT_NEAR(hits[0].score, 0.75, 1e-6);
  EXPECT_EQ(hits[1].candidate.id, 7u);  // 0.25 * 1 + 0.75 / 3
  EXPECT_NEAR(hits[1].score, 0.5, 1e-6);
  EXPECT_EQ(hits[2].candidate.id, 8u);  // 0.25 * 0.5
  EXPECT_NEAR(hits[2].score, 0.125, 1e-6);
  // The weight's ends are each side alone.
  EXPECT_EQ(Fuse(ThreeCandidates(), {FusionMethod::kRelativeScore, 1.0}, 1)[0].candidate.id, 7u);
  EXPECT_EQ(Fuse(ThreeCandidates(), {FusionMethod::kRelativeScore, 0.0}, 1)[0].candidate.id, 9u);
}

TEST(Fusion, ReciprocalRankUsesTheListsOnly) {
  const auto hits = Fuse(ThreeCandidates(), {FusionMethod::kReciprocalRank, 0.5}, 10);
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].candidate.id, 7u);
  EXPECT_NEAR(hits[0].score, 1.0 / 61 + 1.0 / 62, 1e-12);
  EXPECT_EQ(hits[1].candidate.id, 9u);  // lexical rank 1 only
  EXPECT_NEAR(hits[1].score, 1.0 / 61, 1e-12);
  EXPECT_EQ(hits[2].candidate.id, 8u);  // dense rank 2 only
  EXPECT_NEAR(hits[2].score, 1.0 / 62, 1e-12);
  // Weighted: the dense side counts 2 * 0.8.
  const auto dense_heavy = Fuse(ThreeCandidates(), {FusionMethod::kReciprocalRank, 0.8}, 10);
  EXPECT_NEAR(dense_heavy[0].score, 1.6 / 61 + 0.4 / 62, 1e-12);
  EXPECT_EQ(dense_heavy[1].candidate.id, 8u);
}

TEST(Fusion, TiesGoToTheSmallerIdAndKCuts) {
  // Identical components: every score ties, the order is by id whatever the input order.
  std::vector<FusionCandidate> same = {{5, -1, 3, 1, 1}, {2, -1, 3, 2, 2}, {4, -1, 3, 3, 3}};
  do {
    const auto hits = Fuse(same, {FusionMethod::kRelativeScore, 0.5}, 2);
    ASSERT_EQ(hits.size(), 2u);
    EXPECT_EQ(hits[0].candidate.id, 2u);
    EXPECT_EQ(hits[1].candidate.id, 4u);
    // Equal components still count as evidence (1), not as nothing.
    EXPECT_NEAR(hits[0].score, 1.0, 1e-12);
  } while (std::next_permutation(same.begin(), same.end(),
                                 [](const auto& a, const auto& b) { return a.id < b.id; }));
  // Every fused score equal (all the weight on a side with nothing to say): the other side
  // orders them, not the ids.
  std::vector<FusionCandidate> no_text = {
      {1, -0.1f, 0, 3, 0}, {2, -0.9f, 0, 1, 0}, {3, -0.5f, 0, 2, 0}};
  const auto by_dense = Fuse(no_text, {FusionMethod::kRelativeScore, 0.0}, 3);
  EXPECT_EQ((std::vector<uint64_t>{by_dense[0].candidate.id, by_dense[1].candidate.id,
                                   by_dense[2].candidate.id}),
            (std::vector<uint64_t>{2, 3, 1}));
  // No lexical evidence at all (every BM25 0): the lexical side adds nothing.
  std::vector<FusionCandidate> no_terms = {{1, -0.2f, 0, 1, 0}, {2, -0.1f, 0, 2, 0}};
  const auto hits = Fuse(no_terms, {FusionMethod::kRelativeScore, 0.5}, 5);
  EXPECT_NEAR(hits[0].score, 0.5, 1e-12);
  EXPECT_NEAR(hits[1].score, 0.0, 1e-12);
  EXPECT_TRUE(Fuse({}, {}, 5).empty());
}

TEST(Fusion, WeightMustBeInRange) {
  EXPECT_TRUE(CheckFusionParams({FusionMethod::kRelativeScore, 0}).ok());
  EXPECT_TRUE(CheckFusionParams({FusionMethod::kRelativeScore, 1}).ok());
  EXPECT_FALSE(CheckFusionParams({FusionMethod::kRelativeScore, -0.01}).ok());
  EXPECT_FALSE(CheckFusionParams({FusionMethod::kReciprocalRank, 1.5}).ok());
  EXPECT_FALSE(CheckFusionParams({FusionMethod::kRelativeScore, std::nan("")}).ok());
  EXPECT_EQ(FusionParams{}.dense_weight, kDefaultDenseWeight);
}

}  // namespace
}  // namespace strata
