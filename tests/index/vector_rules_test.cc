// The distance contract (index/vector_rules.h): what is accepted always yields finite distances,
// nearest first, in every kernel, in FLAT and indexed search; what cannot is refused clearly.
#include "index/vector_rules.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "index/catalog.h"
#include "index/kernels/distance.h"
#include "index/spann_index.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

const uint8_t* Bytes(const std::vector<float>& v) {
  return reinterpret_cast<const uint8_t*>(v.data());
}

// n float32 rows of dimension d with norms spread up to `max_norm` (random directions), so the
// set spans the whole accepted range.
VectorSet WideRows(uint64_t n, uint32_t d, double max_norm, uint64_t seed) {
  VectorSet s;
  s.type = ElementType::kFloat32;
  s.n = n;
  s.dim = d;
  s.data.resize(n * d * 4);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0, 1);
  std::uniform_real_distribution<double> scale(0.05, 1.0);
  auto* f = reinterpret_cast<float*>(s.data.data());
  for (uint64_t i = 0; i < n; ++i) {
    std::vector<double> r(d);
    double sq = 0;
    for (double& x : r) {
      x = nd(rng);
      sq += x * x;
    }
    const double want = max_norm * scale(rng) * 0.999;
    for (uint32_t j = 0; j < d; ++j) f[i * d + j] = static_cast<float>(r[j] / std::sqrt(sq) * want);
  }
  return s;
}

TEST(VectorRules, RefusesNonFiniteValuesAndNormsWhoseDistancesOverflow) {
  const uint32_t d = 8;
  std::vector<float> v(d, 1.0f);
  EXPECT_TRUE(CheckVectorValues(ElementType::kFloat32, Metric::kL2, d, Bytes(v)).ok());
  v[3] = std::numeric_limits<float>::quiet_NaN();
  absl::Status s = CheckVectorValues(ElementType::kFloat32, Metric::kL2, d, Bytes(v));
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("dimension 3"), std::string::npos) << s.message();
  // Finite but near float32's maximum: the distance would be inf.
  v[3] = 3e38f;
  for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
    s = CheckVectorValues(ElementType::kFloat32, m, d, Bytes(v));
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << MetricName(m);
    EXPECT_NE(s.message().find("norm"), std::string::npos) << s.message();
  }
  // Cosine normalises in double first: any finite non-zero vector is fine.
  EXPECT_TRUE(CheckVectorValues(ElementType::kFloat32, Metric::kCosine, d, Bytes(v)).ok());
  // Just inside and just outside the limit.
  std::vector<float> edge(d, 0.0f);
  edge[0] = static_cast<float>(kMaxVectorNorm * 0.99);
  EXPECT_TRUE(CheckVectorValues(ElementType::kFloat32, Metric::kL2, d, Bytes(edge)).ok());
  edge[0] = static_cast<float>(kMaxVectorNorm * 1.01);
  EXPECT_FALSE(CheckVectorValues(ElementType::kFloat32, Metric::kL2, d, Bytes(edge)).ok());
  // Integer vectors take every value.
  std::vector<uint8_t> u(d, 255);
  EXPECT_TRUE(CheckVectorValues(ElementType::kUint8, Metric::kL2, d, u.data()).ok());
}

TEST(VectorRules, CosineRefusesTheZeroVector) {
  std::vector<float> zero(16, 0.0f);
  absl::Status s = CheckVectorValues(ElementType::kFloat32, Metric::kCosine, 16, Bytes(zero));
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("all zeros"), std::string::npos) << s.message();
  // Under L2 and inner product the zero vector is an ordinary point.
  EXPECT_TRUE(CheckVectorValues(ElementType::kFloat32, Metric::kL2, 16, Bytes(zero)).ok());
  EXPECT_TRUE(
      CheckVectorValues(ElementType::kFloat32, Metric::kInnerProduct, 16, Bytes(zero)).ok());
  // A vector of subnormals has a direction: accepted, and normalised to unit length (a float
  // reciprocal of its norm would overflow).
  std::vector<float> tiny(16, std::numeric_limits<float>::denorm_min());
  EXPECT_TRUE(CheckVectorValues(ElementType::kFloat32, Metric::kCosine, 16, Bytes(tiny)).ok());
  NormalizeInPlace(tiny.data(), 16);
  double sq = 0;
  for (float x : tiny) sq += double{x} * x;
  EXPECT_NEAR(sq, 1.0, 1e-6);
}

// The worst case the rule allows - two opposite vectors at the norm limit - is finite in every
// kernel at every SIMD level, at dimensions that exercise every tail.
TEST(VectorRules, EveryKernelIsFiniteAtTheNormLimit) {
  for (auto level :
       {kernels::SimdLevel::kScalar, kernels::SimdLevel::kAvx2, kernels::SimdLevel::kAvx512}) {
    const kernels::KernelTable* t = kernels::TableFor(level);
    if (t == nullptr) continue;
    for (uint32_t d : {1u, 7u, 16u, 33u, 100u, 4096u}) {
      std::vector<float> a(d), b(d);
      const float x =
          static_cast<float>(kMaxVectorNorm / std::sqrt(static_cast<double>(d)) * 0.999);
      for (uint32_t j = 0; j < d; ++j) {
        a[j] = x;
        b[j] = -x;
      }
      ASSERT_TRUE(CheckVectorValues(ElementType::kFloat32, Metric::kL2, d, Bytes(a)).ok());
      for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
        const float dist =
            kernels::GetDistance(*t, ElementType::kFloat32, m)(a.data(), b.data(), d);
        EXPECT_TRUE(std::isfinite(dist))
            << kernels::SimdLevelName(level) << " " << MetricName(m) << " d=" << d;
      }
    }
  }
}

// Indexed and FLAT search over vectors spread across the whole accepted range: every distance
// finite, nearest first; values beyond it refused at build, upsert and query.
TEST(VectorRules, SearchesOverTheWholeRangeGiveFiniteOrderedDistances) {
  TempDir dir;
  const uint32_t d = 32;
  const VectorSet base = WideRows(3000, d, kMaxVectorNorm, 1);
  const VectorSet queries = WideRows(20, d, kMaxVectorNorm, 2);
  for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
    SpannBuildOptions o;
    o.metric = m;
    const std::string path = dir.File(std::string("idx-") + MetricName(m));
    ASSERT_TRUE(SpannIndex::Build(base, path, o).ok());
    auto index = SpannIndex::Open(path, {});
    ASSERT_TRUE(index.ok()) << index.status();
    for (uint64_t q = 0; q < queries.n; ++q) {
      std::vector<Neighbor> hits;
      ASSERT_TRUE((*index)
                      ->Search(VectorView{queries.type, {queries.row(q), queries.row_bytes()}}, 10,
                               {}, &hits)
                      .ok());
      ASSERT_EQ(hits.size(), 10u);
      for (size_t i = 0; i < hits.size(); ++i) {
        EXPECT_TRUE(std::isfinite(hits[i].distance)) << MetricName(m);
        if (i > 0) {
          EXPECT_LE(hits[i - 1].distance, hits[i].distance) << MetricName(m);
        }
      }
    }
    VectorSet over = base;
    reinterpret_cast<float*>(over.data.data())[5 * d] = 1e30f;
    absl::Status s = SpannIndex::Build(over, path + "-over", o);
    EXPECT_TRUE(absl::IsInvalidArgument(s));
    EXPECT_NE(s.message().find("vector 5"), std::string::npos) << s.message();
  }

  // A FLAT collection under inner product, and a query beyond the range.
  auto catalog = Catalog::Open(dir.File("catalog"));
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  CollectionConfig c;
  c.name = "wide";
  c.dim = d;
  c.metric = Metric::kInnerProduct;
  auto col = (*catalog)->Create(c);
  ASSERT_TRUE(col.ok()) << col.status();
  std::vector<PointInput> rows;
  for (uint64_t i = 0; i < 500; ++i) rows.push_back({i, {base.row(i), base.row_bytes()}, {}});
  std::vector<float> huge(d, 1e30f);
  rows.push_back({9999, {Bytes(huge), d * 4u}, {}});
  std::vector<RowError> errors;
  uint64_t upserted = 0;
  ASSERT_TRUE((*col)->Upsert(rows, &errors, &upserted).ok());
  EXPECT_EQ(upserted, 500u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].id, 9999u);
  std::vector<Hit> hits;
  ASSERT_TRUE(
      (*col)
          ->Search(VectorView{queries.type, {queries.row(0), queries.row_bytes()}}, 20, {}, &hits)
          .ok());
  ASSERT_EQ(hits.size(), 20u);
  for (size_t i = 0; i < hits.size(); ++i) {
    EXPECT_TRUE(std::isfinite(hits[i].distance));
    if (i > 0) {
      EXPECT_LE(hits[i - 1].distance, hits[i].distance);
    }
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*col)->Search(VectorView{ElementType::kFloat32, {Bytes(huge), d * 4u}}, 5, {}, &hits)));
}

}  // namespace
}  // namespace strata
