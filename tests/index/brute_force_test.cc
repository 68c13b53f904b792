#include "index/brute_force.h"

#include <random>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(ExactKnn, MatchesNaiveScan) {
  std::mt19937 rng(1);
  VectorSet base, q;
  base.type = q.type = ElementType::kUint8;
  base.dim = q.dim = 16;
  base.n = 3000;
  q.n = 70;
  base.data.resize(base.n * 16);
  q.data.resize(q.n * 16);
  for (auto& b : base.data) b = static_cast<uint8_t>(rng() % 8);  // many ties
  for (auto& b : q.data) b = static_cast<uint8_t>(rng() % 8);
  auto gt = ExactKnn(base, q, Metric::kL2, 25, 2);
  ASSERT_TRUE(gt.ok());
  for (uint64_t i = 0; i < q.n; ++i) {
    std::vector<std::pair<float, int32_t>> all;
    for (uint64_t j = 0; j < base.n; ++j) {
      float s = 0;
      for (int c = 0; c < 16; ++c) {
        float t = float(q.row(i)[c]) - float(base.row(j)[c]);
        s += t * t;
      }
      all.push_back({s, static_cast<int32_t>(j)});
    }
    std::sort(all.begin(), all.end());
    for (int j = 0; j < 25; ++j) {
      EXPECT_EQ(gt->ids[i * 25 + j], all[j].second);
      EXPECT_EQ(gt->distances[i * 25 + j], all[j].first);
    }
  }
}

TEST(ExactKnn, RejectsMismatches) {
  VectorSet a, b;
  a.type = ElementType::kUint8;
  b.type = ElementType::kFloat32;
  a.dim = b.dim = 4;
  a.n = b.n = 1;
  a.data.resize(4);
  b.data.resize(16);
  EXPECT_TRUE(absl::IsInvalidArgument(ExactKnn(a, b, Metric::kL2, 1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ExactKnn(a, a, Metric::kL2, 2).status()));
}

}  // namespace
}  // namespace strata
