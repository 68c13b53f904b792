// The int8-activation block products (gpu/internal/quant_dot_q8.h): the scalar reference within
// the activations' rounding bound of the exact float product, and the fast kernel (where this CPU
// has it) equal to the reference to float rounding for every supported type, 1 to 8 activation
// rows and odd row counts.
#include "gpu/internal/quant_dot_q8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gpu/internal/quant_kernels.h"
#include "gpu/internal/quant_matmul.h"
#include "tests/gpu/tiny_decoder.h"

namespace strata::gpu::cpu {
namespace {

std::vector<float> Normal(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = scale * normal(rng);
  return x;
}

TEST(QuantizeActivations, CodesScalesAndSums) {
  std::vector<float> x = Normal(64, 1);
  x[40] = 0;
  for (int i = 32; i < 64; ++i) x[static_cast<size_t>(i)] = 0;  // an all-zero block
  x[5] = -3.5f;                                                 // the first block's largest
  Q8Activations q;
  QuantizeActivations(x.data(), 1, 64, &q);
  ASSERT_EQ(q.d.size(), 2u);
  EXPECT_FLOAT_EQ(q.d[0], 3.5f / 127.0f);
  EXPECT_EQ(q.q[5], -127);
  EXPECT_EQ(q.d[1], 0.0f);
  EXPECT_EQ(q.sum[1], 0.0f);
  int32_t sum = 0;
  for (int i = 0; i < 32; ++i) {
    sum += q.q[static_cast<size_t>(i)];
    EXPECT_LE(std::fabs(q.q[static_cast<size_t>(i)] * q.d[0] - x[static_cast<size_t>(i)]),
              q.d[0] / 2 * 1.0001f);
  }
  EXPECT_FLOAT_EQ(q.sum[0], q.d[0] * static_cast<float>(sum));
  // A block of denormal-small values is zeros (no infinite 1/d); a NaN reaches the scale.
  std::vector<float> odd(64, 1e-38f);
  odd[40] = NAN;
  QuantizeActivations(odd.data(), 1, 64, &q);
  EXPECT_EQ(q.d[0], 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q.q[static_cast<size_t>(i)], 0);
  EXPECT_TRUE(std::isnan(q.d[1]));
  EXPECT_TRUE(std::isnan(q.sum[1]));
}

TEST(Q8Dot, TheReferenceIsWithinTheActivationRoundingOfTheFloatProduct) {
  const int64_t n = 512, rows = 5;
  for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1}) {
    SCOPED_TRACE(std::string(GgmlTypeName(t)));
    ASSERT_TRUE(Q8DotSupports(t));
    const std::string w = testing::RandomGgmlRows(t, rows, n, 3);
    const size_t stride = GgmlRowBytes(t, n);
    const std::vector<float> x = Normal(n, 9, 4.0f);
    Q8Activations q;
    QuantizeActivations(x.data(), 1, n, &q);
    std::vector<float> got(rows);
    ScalarQ8DotKernels().dot_rows(t, reinterpret_cast<const uint8_t*>(w.data()), stride, rows,
                                  q.All(), got.data(), 1);
    for (int64_t j = 0; j < rows; ++j) {
      std::vector<float> wv(static_cast<size_t>(n));
      ScalarQuantKernels().dequantize_row(t, w.data() + static_cast<size_t>(j) * stride, n,
                                          wv.data());
      double exact = 0, bound = 0;
      for (int64_t i = 0; i < n; ++i) {
        exact += static_cast<double>(wv[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)];
        // Each activation is off by at most half its block's step.
        bound += std::fabs(wv[static_cast<size_t>(i)]) * q.d[static_cast<size_t>(i / 32)] / 2;
      }
      EXPECT_LE(std::fabs(got[static_cast<size_t>(j)] - exact), bound * 1.001 + 1e-4) << j;
      EXPECT_GT(std::fabs(got[static_cast<size_t>(j)] - exact), 0.0);  // it is approximate
    }
  }
  EXPECT_FALSE(Q8DotSupports(GgmlType::kQ4_K));
  EXPECT_FALSE(Q8DotSupports(GgmlType::kF32));
}

TEST(Q8Dot, TheFastKernelEqualsTheReference) {
  const Q8DotKernels* fast = FastQ8DotKernels();
  if (fast == nullptr) GTEST_SKIP() << "no AVX512-VNNI on this CPU: the int8 path is not used";
  const int64_t n = 384, rows = 7;
  for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1}) {
    SCOPED_TRACE(std::string(GgmlTypeName(t)));
    const std::string w = testing::RandomGgmlRows(t, rows, n, 5);
    const size_t stride = GgmlRowBytes(t, n);
    const auto* p = reinterpret_cast<const uint8_t*>(w.data());
    for (int64_t m = 1; m <= 8; ++m) {
      const std::vector<float> x = Normal(m * n, static_cast<uint64_t>(m), 2.0f);
      Q8Activations q;
      QuantizeActivations(x.data(), m, n, &q);
      std::vector<float> want(static_cast<size_t>(m * 10), -1.0f), got = want;
      ScalarQ8DotKernels().dot_rows(t, p, stride, rows, q.All(), want.data(), 10);
      fast->dot_rows(t, p, stride, rows, q.All(), got.data(), 10);
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = 0; j < rows; ++j) {
          const float a = want[static_cast<size_t>(r * 10 + j)];
          EXPECT_NEAR(got[static_cast<size_t>(r * 10 + j)], a, 1e-4f * (1 + std::fabs(a)))
              << "m " << m << " row " << r << " col " << j;
        }
        EXPECT_EQ(got[static_cast<size_t>(r * 10 + rows)], -1.0f);  // nothing past count
      }
    }
  }
}

// Through QuantMatmul: up to kQuantInt8Rows rows (the kernel's groups of 8), each row as the
// reference computes it alone; a bias added after.
TEST(Q8Dot, MatmulRowsInGroupsEqualEachRowAlone) {
  if (FastQ8DotKernels() == nullptr) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  const int64_t n = 70, k = 128;  // 70 outputs: a chunk of 64 and a short one
  const std::string w = testing::RandomGgmlRows(GgmlType::kQ4_1, n, k, 8);
  auto m = QuantMatrix::Copy(GgmlType::kQ4_1, w.data(), n, k, /*int8_activations=*/true);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->int8_activations());
  std::vector<float> bias(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) bias[static_cast<size_t>(j)] = 0.25f * static_cast<float>(j % 5);
  for (int64_t rows : {1, 7, 8, 9, 16}) {
    const std::vector<float> x = Normal(rows * k, static_cast<uint64_t>(rows));
    std::vector<float> y(static_cast<size_t>(rows * n));
    QuantMatmul(x.data(), rows, *m, bias.data(), 0, y.data());
    for (int64_t r = 0; r < rows; ++r) {
      Q8Activations q;
      QuantizeActivations(x.data() + r * k, 1, k, &q);
      std::vector<float> want(static_cast<size_t>(n));
      ScalarQ8DotKernels().dot_rows(GgmlType::kQ4_1, m->row(0), m->row_bytes(), n, q.All(),
                                    want.data(), 1);
      for (int64_t j = 0; j < n; ++j) {
        const float e = want[static_cast<size_t>(j)] + bias[static_cast<size_t>(j)];
        EXPECT_NEAR(y[static_cast<size_t>(r * n + j)], e, 1e-4f * (1 + std::fabs(e)))
            << rows << " rows, row " << r << " col " << j;
      }
    }
  }
}

}  // namespace
}  // namespace strata::gpu::cpu
