#include "index/clustering.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "gtest/gtest.h"
#include "tools/synthetic.h"

namespace strata {
namespace {

VectorSet Skewed(uint64_t n) {
  SyntheticOptions o;  // Zipf-weighted clusters: plain k-means leaves a few giants here
  o.seed = 5;
  auto g = SyntheticGenerator::Create(o);
  return g->Generate(0, n);
}

TEST(BalancedHierarchicalClustering, HeadCountFollowsTheShare) {
  VectorSet s = Skewed(20000);
  auto f = RowsAsFloat(s, 0, s.n);
  ClusteringOptions o;
  o.leaf_size = 10;
  auto r = BalancedHierarchicalClustering(f.data(), s.n, s.dim, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->heads.size(), 1500u);
  EXPECT_LT(r->heads.size(), 2600u);
  // Heads are distinct members, and leaves cover every point exactly once.
  std::set<VectorId> distinct(r->heads.begin(), r->heads.end());
  EXPECT_EQ(distinct.size(), r->heads.size());
  EXPECT_EQ(std::accumulate(r->leaf_sizes.begin(), r->leaf_sizes.end(), uint64_t{0}), s.n);
}

TEST(BalancedHierarchicalClustering, BalancePenaltyBoundsLeafSizes) {
  VectorSet s = Skewed(20000);
  auto f = RowsAsFloat(s, 0, s.n);
  ClusteringOptions balanced;
  balanced.leaf_size = 10;
  auto r = BalancedHierarchicalClustering(f.data(), s.n, s.dim, balanced);
  ASSERT_TRUE(r.ok());
  uint32_t biggest = *std::max_element(r->leaf_sizes.begin(), r->leaf_sizes.end());
  EXPECT_LE(biggest, 40u) << "leaf sizes should stay within a few times the target";
}

TEST(BalancedKMeans, PenaltyEvensOutClusterSizes) {
  VectorSet s = Skewed(20000);
  auto f = RowsAsFloat(s, 0, s.n);
  std::vector<VectorId> ids(s.n);
  std::iota(ids.begin(), ids.end(), 0);
  auto spread = [&](double balance) {
    ClusteringOptions o;
    o.balance = balance;
    std::vector<uint32_t> assign;
    std::vector<float> centroids;
    BalancedKMeans(FloatRows(f.data(), s.dim), ids, 32, o, 9, &assign, &centroids);
    std::vector<uint32_t> sizes(32, 0);
    for (uint32_t a : assign) ++sizes[a];
    return *std::max_element(sizes.begin(), sizes.end());
  };
  uint32_t plain = spread(0.0), balanced = spread(1.0);
  EXPECT_LT(balanced, plain) << "plain max " << plain << ", balanced max " << balanced;
  EXPECT_LT(balanced, 3 * 20000 / 32);
}

TEST(BalancedHierarchicalClustering, IsDeterministic) {
  VectorSet s = Skewed(5000);
  auto f = RowsAsFloat(s, 0, s.n);
  ClusteringOptions o;
  auto a = BalancedHierarchicalClustering(f.data(), s.n, s.dim, o);
  auto b = BalancedHierarchicalClustering(f.data(), s.n, s.dim, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->heads, b->heads);
}

TEST(BalancedHierarchicalClustering, RejectsBadInput) {
  float x[4] = {0, 1, 2, 3};
  ClusteringOptions o;
  EXPECT_TRUE(absl::IsInvalidArgument(BalancedHierarchicalClustering(x, 0, 2, o).status()));
  o.leaf_size = 0.5;
  EXPECT_TRUE(absl::IsInvalidArgument(BalancedHierarchicalClustering(x, 2, 2, o).status()));
}

TEST(BalancedHierarchicalClustering, HandlesDuplicatePoints) {
  std::vector<float> same(1000 * 4, 1.0f);
  ClusteringOptions o;
  o.leaf_size = 10;
  auto r = BalancedHierarchicalClustering(same.data(), 1000, 4, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::accumulate(r->leaf_sizes.begin(), r->leaf_sizes.end(), uint64_t{0}), 1000u);
}

}  // namespace
}  // namespace strata
