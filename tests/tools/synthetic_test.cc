#include "tools/synthetic.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/data_stats.h"

namespace strata {
namespace {

TEST(SyntheticGenerator, IsDeterministicPerRow) {
  auto g = SyntheticGenerator::Create({});
  ASSERT_TRUE(g.ok());
  VectorSet all = g->Generate(0, 1000);
  VectorSet tail = g->Generate(600, 400, 1);  // any split, any thread count: the same rows
  EXPECT_EQ(std::vector<uint8_t>(all.data.begin() + 600 * 128, all.data.end()), tail.data);
  SyntheticOptions other;
  other.seed = 2;
  EXPECT_NE(SyntheticGenerator::Create(other)->Generate(0, 10).data,
            std::vector<uint8_t>(all.data.begin(), all.data.begin() + 10 * 128));
}

TEST(SyntheticGenerator, QueriesAreNotInTheBase) {
  auto g = SyntheticGenerator::Create({});
  VectorSet base = g->Generate(0, 5000), queries = g->Generate(5000, 200);
  std::set<std::vector<uint8_t>> rows;
  for (uint64_t i = 0; i < base.n; ++i) rows.insert({base.row(i), base.row(i) + 128});
  for (uint64_t i = 0; i < queries.n; ++i) {
    EXPECT_EQ(rows.count({queries.row(i), queries.row(i) + 128}), 0u) << i;
  }
}

TEST(SyntheticGenerator, DeepLikeIsUnitNormFloat) {
  SyntheticOptions o;
  o.kind = SyntheticKind::kDeepLike;
  VectorSet s = SyntheticGenerator::Create(o)->Generate(0, 50);
  EXPECT_EQ(s.type, ElementType::kFloat32);
  EXPECT_EQ(s.dim, 96u);
  for (uint64_t i = 0; i < s.n; ++i) {
    const auto* f = reinterpret_cast<const float*>(s.row(i));
    double n = 0;
    for (int j = 0; j < 96; ++j) n += double{f[j]} * f[j];
    EXPECT_NEAR(n, 1.0, 1e-4);
  }
}

// The SIFT-like kind is calibrated against real SIFT: at n = 5,000 its LID and relative contrast
// must be within 15% of the real sample's (over several seeds, so the calibration is not luck).
TEST(SyntheticGenerator, SiftLikeMatchesRealSiftDifficulty) {
  std::string dir = testing::SharedDataDir();
  if (dir.empty()) GTEST_SKIP() << "../shared/data is absent (it sits beside the checkout in CI)";
  auto real = ReadVectors(dir + "/sift-5k.u8bin");
  ASSERT_TRUE(real.ok()) << real.status();
  auto want = MeasureDifficulty(*real);
  ASSERT_TRUE(want.ok());
  for (uint64_t seed : {1, 2, 3}) {
    SyntheticOptions o;
    o.seed = seed;
    auto got = MeasureDifficulty(SyntheticGenerator::Create(o)->Generate(0, 5000));
    ASSERT_TRUE(got.ok());
    EXPECT_NEAR(got->lid_median / want->lid_median, 1.0, 0.15)
        << "seed " << seed << ": LID " << got->lid_median << " vs real " << want->lid_median;
    EXPECT_NEAR(got->rc_median / want->rc_median, 1.0, 0.15)
        << "seed " << seed << ": RC " << got->rc_median << " vs real " << want->rc_median;
  }
}

TEST(MeasureDifficulty, NaiveMixtureIsMeasurablyEasier) {
  // A plain isotropic Gaussian mixture (what the issue warns about) has lower LID than ours.
  SyntheticOptions naive;
  naive.global_rank = 128;
  naive.global_decay = 0;
  naive.local_rank = 0;
  naive.noise = 0.02;
  naive.clusters = 100;
  naive.zipf = 0;
  auto easy = MeasureDifficulty(SyntheticGenerator::Create(naive)->Generate(0, 5000));
  auto hard = MeasureDifficulty(SyntheticGenerator::Create({})->Generate(0, 5000));
  ASSERT_TRUE(easy.ok() && hard.ok());
  EXPECT_GT(easy->rc_median, hard->rc_median);
}

TEST(MeasureDifficulty, RejectsTinySets) {
  VectorSet s;
  s.type = ElementType::kUint8;
  s.dim = 4;
  s.n = 100;
  s.data.resize(400);
  EXPECT_TRUE(absl::IsInvalidArgument(MeasureDifficulty(s).status()));
}

}  // namespace
}  // namespace strata
