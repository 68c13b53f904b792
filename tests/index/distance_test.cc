#include "index/kernels/distance.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "storage/half.h"

namespace strata::kernels {
namespace {

class DistanceVariantTest : public ::testing::TestWithParam<SimdLevel> {};

// Every variant against the scalar reference, over dimensions that hit every tail length, for every
// type and metric. Integer kernels are exact; float kernels agree to rounding.
TEST_P(DistanceVariantTest, MatchesScalarReference) {
  const KernelTable* t = TableFor(GetParam());
  if (t == nullptr) GTEST_SKIP() << SimdLevelName(GetParam()) << " is not supported on this CPU";
  const KernelTable* ref = TableFor(SimdLevel::kScalar);
  std::mt19937_64 rng(11);
  std::normal_distribution<float> nd(0, 10);
  for (size_t d = 1; d <= 300; d += (d < 70 ? 1 : 37)) {
    std::vector<float> fa(d), fb(d);
    std::vector<uint8_t> ua(d), ub(d);
    std::vector<int8_t> ia(d), ib(d);
    for (size_t i = 0; i < d; ++i) {
      fa[i] = nd(rng);
      fb[i] = nd(rng);
      ua[i] = static_cast<uint8_t>(rng());
      ub[i] = static_cast<uint8_t>(rng());
      ia[i] = static_cast<int8_t>(rng());
      ib[i] = static_cast<int8_t>(rng());
    }
    for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
      float want = GetDistance(*ref, ElementType::kFloat32, m)(fa.data(), fb.data(), d);
      float got = GetDistance(*t, ElementType::kFloat32, m)(fa.data(), fb.data(), d);
      EXPECT_NEAR(got, want, 1e-4f * (1 + std::fabs(want))) << "f32 d=" << d;
      EXPECT_EQ(GetDistance(*t, ElementType::kUint8, m)(ua.data(), ub.data(), d),
                GetDistance(*ref, ElementType::kUint8, m)(ua.data(), ub.data(), d))
          << "u8 d=" << d;
      EXPECT_EQ(GetDistance(*t, ElementType::kInt8, m)(ia.data(), ib.data(), d),
                GetDistance(*ref, ElementType::kInt8, m)(ia.data(), ib.data(), d))
          << "i8 d=" << d;
    }
  }
}

// Float16 vectors (a float32 query against float16 entries, as float16 postings store them): every
// variant agrees with the scalar reference, which equals the float32 kernel on the widened values.
TEST_P(DistanceVariantTest, Float16VectorsMatchTheReference) {
  const KernelTable* t = TableFor(GetParam());
  if (t == nullptr) GTEST_SKIP() << SimdLevelName(GetParam()) << " is not supported on this CPU";
  const KernelTable* ref = TableFor(SimdLevel::kScalar);
  std::mt19937_64 rng(12);
  std::normal_distribution<float> nd(0, 3);
  for (size_t d = 1; d <= 300; d += (d < 70 ? 1 : 37)) {
    std::vector<float> q(d), widened(d);
    // The half vector sits 4 bytes into an entry, behind its id, as in a posting.
    std::vector<uint16_t> entry(2 + d);
    uint16_t* h = entry.data() + 2;
    for (size_t i = 0; i < d; ++i) {
      q[i] = nd(rng);
      h[i] = FloatToHalf(nd(rng));
      widened[i] = HalfToFloat(h[i]);
    }
    for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
      float exact = GetDistance(*ref, ElementType::kFloat32, m)(q.data(), widened.data(), d);
      EXPECT_EQ(GetFloat16Distance(*ref, m)(q.data(), h, d), exact) << "scalar d=" << d;
      float got = GetFloat16Distance(*t, m)(q.data(), h, d);
      EXPECT_NEAR(got, exact, 1e-4f * (1 + std::fabs(exact))) << "f16 d=" << d;
    }
  }
}

TEST_P(DistanceVariantTest, ExtremeIntegerValuesDoNotOverflow) {
  const KernelTable* t = TableFor(GetParam());
  if (t == nullptr) GTEST_SKIP() << "unsupported";
  const size_t d = 4096;
  std::vector<uint8_t> zero(d, 0), full(d, 255);
  EXPECT_EQ(GetDistance(*t, ElementType::kUint8, Metric::kL2)(zero.data(), full.data(), d),
            255.f * 255.f * d);
  std::vector<int8_t> lo(d, -128), hi(d, 127);
  EXPECT_EQ(GetDistance(*t, ElementType::kInt8, Metric::kL2)(lo.data(), hi.data(), d),
            255.f * 255.f * d);
  EXPECT_EQ(GetDistance(*t, ElementType::kInt8, Metric::kInnerProduct)(lo.data(), lo.data(), d),
            -128.f * 128.f * d);
}

TEST_P(DistanceVariantTest, BatchMatchesOneByOne) {
  const KernelTable* t = TableFor(GetParam());
  if (t == nullptr) GTEST_SKIP() << "unsupported";
  const size_t d = 100, n = 9, stride = 4 + d;  // entries as in a posting: [u32 id][vector]
  std::mt19937 rng(3);
  std::vector<uint8_t> q(d), base(n * stride);
  for (auto& b : q) b = static_cast<uint8_t>(rng());
  for (auto& b : base) b = static_cast<uint8_t>(rng());
  std::vector<float> out(n);
  GetBatch(*t, ElementType::kUint8, Metric::kL2)(q.data(), base.data() + 4, stride, n, d,
                                                 out.data());
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(out[i], GetDistance(*t, ElementType::kUint8, Metric::kL2)(
                          q.data(), base.data() + i * stride + 4, d));
  }
}

// The float16 conversion gives FloatToHalf's bits for every value but NaN, in every variant:
// normals of every magnitude, halfway cases (ties to even), subnormals, the edge of overflow,
// zeros and infinities, at every tail length.
TEST_P(DistanceVariantTest, ToHalfMatchesFloatToHalfBitForBit) {
  const KernelTable* t = TableFor(GetParam());
  if (t == nullptr) GTEST_SKIP() << "unsupported";
  std::vector<float> in;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> exp(-30, 17);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::ldexp(mant(rng), exp(rng));
    in.push_back(i % 2 ? -x : x);
  }
  // Exactly halfway between two halves (the 13 dropped bits 0x1000), each parity; subnormal
  // halves and their halfway points; overflow's edge; zeros and infinities.
  for (uint32_t h = 0x0001; h < 0x7c00; h += 97) {
    const float lo = HalfToFloat(static_cast<uint16_t>(h)), hi = HalfToFloat(h + 1);
    in.push_back(lo);
    in.push_back((lo + hi) / 2);
    in.push_back(-(lo + hi) / 2);
  }
  for (float x :
       {std::numeric_limits<float>::denorm_min(), -1e-40f, 1e-39f, 0.0f, -0.0f, 65504.0f, 65519.0f,
        65520.0f, 65536.0f, 1e30f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-30f,
        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    in.push_back(x);
  }
  std::vector<uint16_t> got(in.size());
  t->to_half(in.data(), got.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(got[i], FloatToHalf(in[i])) << "value " << in[i] << " at " << i;
  }
  for (size_t n = 0; n <= 40; ++n) {  // every tail length, from an odd start
    std::vector<uint16_t> part(n + 1, 0xabcd);
    t->to_half(in.data() + 3, part.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(part[i], FloatToHalf(in[3 + i])) << n;
    EXPECT_EQ(part[n], 0xabcd) << "wrote past " << n;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  uint16_t h = 0;
  t->to_half(&nan, &h, 1);
  EXPECT_TRUE(std::isnan(HalfToFloat(h)));
}

INSTANTIATE_TEST_SUITE_P(Variants, DistanceVariantTest,
                         ::testing::Values(SimdLevel::kScalar, SimdLevel::kAvx2,
                                           SimdLevel::kAvx512),
                         [](const auto& info) { return std::string(SimdLevelName(info.param)); });

TEST(Distance, BestIsSupported) {
  const KernelTable& best = Best();
  EXPECT_EQ(TableFor(best.level), &best);
}

}  // namespace
}  // namespace strata::kernels
