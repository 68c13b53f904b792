// Recall floors on the real data sets beside the checkout (../shared/data). They are not part of a
// user's clone: the tests skip, saying so, when the folder is absent.
#include <filesystem>

#include "gtest/gtest.h"
#include "index/brute_force.h"
#include "index/spann_index.h"
#include "tests/test_util.h"

namespace strata {
namespace {

double BuildAndMeasure(const VectorSet& base, const VectorSet& queries, uint32_t max_postings) {
  auto gt = ExactKnn(base, queries, Metric::kL2, 10);
  EXPECT_TRUE(gt.ok());
  testing::TempDir dir;
  absl::Status s = SpannIndex::Build(base, dir.path() + "/idx", {});
  EXPECT_TRUE(s.ok()) << s;
  auto index = SpannIndex::Open(dir.path() + "/idx");
  EXPECT_TRUE(index.ok()) << index.status();
  if (!index.ok()) return 0;
  SearchParams p;
  p.max_postings = max_postings;
  std::vector<std::vector<uint32_t>> results;
  for (uint64_t i = 0; i < queries.n; ++i) {
    std::vector<Neighbor> r;
    EXPECT_TRUE(
        (*index)->Search({queries.type, {queries.row(i), queries.row_bytes()}}, 10, p, &r).ok());
    std::vector<uint32_t> ids;
    for (auto& n : r) ids.push_back(n.id);
    results.push_back(ids);
  }
  return testing::RecallAtK(*gt, results, 10);
}

TEST(RealData, MnistRecallAt10) {
  std::string dir = testing::SharedDataDir();
  if (dir.empty()) GTEST_SKIP() << "../shared/data is absent (it sits beside the checkout in CI)";
  std::string err;
  auto all = testing::ReadMnistImages(dir + "/mnist-t10k-images-idx3-ubyte.gz", &err);
  ASSERT_TRUE(all.has_value()) << err;
  ASSERT_EQ(all->n, 10000u);
  VectorSet base = testing::Slice(*all, 0, 9000), queries = testing::Slice(*all, 9000, 1000);
  double recall = BuildAndMeasure(base, queries, 32);
  RecordProperty("recall_at_10", std::to_string(recall));
  EXPECT_GE(recall, 0.90);
}

TEST(RealData, SiftRecallAt10) {
  std::string dir = testing::SharedDataDir();
  if (dir.empty()) GTEST_SKIP() << "../shared/data is absent (it sits beside the checkout in CI)";
  auto all = ReadVectors(dir + "/sift-5k.u8bin");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->n, 5000u);
  VectorSet base = testing::Slice(*all, 0, 4800), queries = testing::Slice(*all, 4800, 200);
  double recall = BuildAndMeasure(base, queries, 32);
  RecordProperty("recall_at_10", std::to_string(recall));
  EXPECT_GE(recall, 0.90);
}

}  // namespace
}  // namespace strata
