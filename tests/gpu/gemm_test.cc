// The CPU GEMM: every microkernel this CPU runs against double-precision loops written here, and
// the choice of kernel against the CPU's features.
#include "gpu/internal/gemm.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/cpu_features.h"
#include "storage/half.h"

namespace strata::gpu::cpu {
namespace {

struct Shape {
  int64_t m, n, k;
};
// Odd sizes on purpose: rows past a 12-, 32- and 96-row block, columns past a panel, k past every
// padding.
// k = 200 and 1000 leave a short last slice of the f32 k-blocks (kGemmDepthBlock = 192).
const Shape kShapes[] = {{1, 1, 1},       {3, 5, 7},     {13, 33, 31},
                         {31, 64, 65},    {97, 70, 129}, {200, 96, 384},
                         {37, 384, 1536}, {45, 40, 200}, {33, 64, 1000}};

std::vector<float> Random(size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

float RoundBf16(float v) { return BFloat16ToFloat(FloatToBFloat16(v)); }

// y = x · wᵀ + bias in double, with x and w first rounded to bf16 when `bf16`.
std::vector<double> Reference(const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& bias, const Shape& s, bool bf16) {
  std::vector<double> y(static_cast<size_t>(s.m * s.n));
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double acc = bias[j];
      for (int64_t p = 0; p < s.k; ++p) {
        float a = x[i * s.k + p], b = w[j * s.k + p];
        if (bf16) a = RoundBf16(a), b = RoundBf16(b);
        acc += double(a) * b;
      }
      y[i * s.n + j] = acc;
    }
  }
  return y;
}

std::vector<float> RunGemm(const GemmKernel& kernel, const std::vector<float>& x,
                           const std::vector<float>& w, const std::vector<float>& bias,
                           const Shape& s) {
  auto packed = PackedWeight::Pack(w.data(), s.n, s.k, kernel);
  EXPECT_TRUE(packed.ok()) << packed.status();
  std::vector<float> y(static_cast<size_t>(s.m * s.n), -1.0f);
  GemmScratch scratch;
  Gemm(x.data(), s.m, *packed, bias.data(), /*act=*/0, y.data(), scratch);
  return y;
}

const GemmKernel& Reference(GemmPrecision p) {
  for (const GemmKernel& k : AvailableGemmKernels()) {
    if (k.precision == p && k.level == SimdLevel::kScalar) return k;
  }
  std::abort();
}

TEST(Gemm, EveryKernelMatchesDoublePrecisionLoops) {
  std::mt19937 rng(7);
  for (const GemmKernel& kernel : AvailableGemmKernels()) {
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(kernel.name) + " m=" + std::to_string(s.m) +
                   " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k));
      const auto x = Random(static_cast<size_t>(s.m * s.k), rng, 1.0f);
      const auto w = Random(static_cast<size_t>(s.n * s.k), rng, 0.05f);
      const auto bias = Random(static_cast<size_t>(s.n), rng, 0.1f);
      const auto y = RunGemm(kernel, x, w, bias, s);
      const bool bf16 = kernel.precision == GemmPrecision::kBF16;
      const auto want = Reference(x, w, bias, s, bf16);
      if (kernel.precision == GemmPrecision::kInt8) {
        // Quantisation noise: ~1/127 of each row's and column's peak per factor, averaging out
        // over k. Exactness against the reference kernel is the next test's job.
        double err = 0, norm = 0;
        for (size_t i = 0; i < y.size(); ++i) {
          err += (y[i] - want[i]) * (y[i] - want[i]);
          norm += want[i] * want[i];
        }
        EXPECT_LE(std::sqrt(err / norm), 0.03);
        continue;
      }
      // f32 and bf16 differ from the reference only by the fp32 rounding of the sums.
      const double scale = 0.05 * std::sqrt(double(s.k));  // the typical |y|
      const double tol = 2e-6 * scale * std::sqrt(double(s.k));
      double worst = 0;
      for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::fabs(y[i] - want[i]));
      EXPECT_LE(worst, tol);
    }
  }
}

TEST(Gemm, Int8KernelsAreExactlyTheReference) {
  // Integer sums are exact, so every int8 kernel must give the scalar reference's bits.
  std::mt19937 rng(11);
  for (const GemmKernel& kernel : AvailableGemmKernels()) {
    if (kernel.precision != GemmPrecision::kInt8) continue;
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(kernel.name) + " m=" + std::to_string(s.m));
      const auto x = Random(static_cast<size_t>(s.m * s.k), rng, 1.0f);
      const auto w = Random(static_cast<size_t>(s.n * s.k), rng, 0.05f);
      const std::vector<float> bias(static_cast<size_t>(s.n), 0.0f);
      EXPECT_EQ(RunGemm(kernel, x, w, bias, s),
                RunGemm(Reference(GemmPrecision::kInt8), x, w, bias, s));
    }
  }
}

TEST(Gemm, AppliesBiasAndActivationToEveryColumn) {
  std::mt19937 rng(3);
  const Shape s{40, 100, 48};
  const auto x = Random(static_cast<size_t>(s.m * s.k), rng, 1.0f);
  const auto w = Random(static_cast<size_t>(s.n * s.k), rng, 0.2f);
  const auto bias = Random(static_cast<size_t>(s.n), rng, 1.0f);
  for (const GemmKernel& kernel : AvailableGemmKernels()) {
    SCOPED_TRACE(kernel.name);
    auto packed = PackedWeight::Pack(w.data(), s.n, s.k, kernel);
    ASSERT_TRUE(packed.ok());
    std::vector<float> y(static_cast<size_t>(s.m * s.n));
    GemmScratch scratch;
    Gemm(x.data(), s.m, *packed, bias.data(), /*act=GELU*/ 1, y.data(), scratch);
    const auto want = Reference(x, w, bias, s, kernel.precision == GemmPrecision::kBF16);
    const double tol = kernel.precision == GemmPrecision::kInt8 ? 0.1 : 1e-4;
    for (size_t i = 0; i < y.size(); ++i) {
      const double g = 0.5 * want[i] * (1 + std::erf(want[i] / std::sqrt(2.0)));
      ASSERT_NEAR(y[i], g, tol) << i;
    }
  }
}

TEST(Gemm, Int8MapsANonFiniteRowToNaNOutputs) {
  const Shape s{2, 3, 4};
  std::vector<float> x = {1, 2, 3, 4, 1, NAN, 3, 4};
  const std::vector<float> w(12, 0.5f), bias(3, 0.0f);
  for (const GemmKernel& kernel : AvailableGemmKernels()) {
    if (kernel.precision != GemmPrecision::kInt8) continue;
    SCOPED_TRACE(kernel.name);
    const auto y = RunGemm(kernel, x, w, bias, s);
    EXPECT_NEAR(y[0], 5.0, 0.05);
    EXPECT_TRUE(std::isnan(y[3]) && std::isnan(y[5]));
  }
}

// The padding contract, checked against the page boundary: each kernel gets `a`, its panel and `c`
// ending exactly where an inaccessible page begins (a rows padded only to row_align, k only to the
// precision's alignment). A read or write past them is a crash, which ASan alone would miss
// (AMX tile loads and masked vector loads are not instrumented).
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t bytes) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    span_ = (bytes + page_ - 1) / page_ * page_ + page_;
    base_ = static_cast<uint8_t*>(
        mmap(nullptr, span_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(base_, MAP_FAILED);
    EXPECT_EQ(mprotect(base_ + span_ - page_, page_, PROT_NONE), 0);
    data_ = base_ + span_ - page_ - bytes;
    std::memset(data_, 0, bytes);
  }
  ~GuardedBuffer() { munmap(base_, span_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }

 private:
  size_t page_ = 0, span_ = 0;
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
};

TEST(Gemm, KernelsReadAndWriteOnlyWhatTheContractAllows) {
  std::mt19937 rng(9);
  for (const GemmKernel& kernel : AvailableGemmKernels()) {
    for (const int64_t rows : {1, 5, 13, 33}) {
      SCOPED_TRACE(std::string(kernel.name) + " rows=" + std::to_string(rows));
      const int64_t k = RoundUp(70, KAlign(kernel.precision));
      const int64_t a_rows = RoundUp(rows, kernel.row_align);
      const int cols = 19;  // a partial panel
      const auto w = Random(static_cast<size_t>(cols * k), rng, 0.1f);
      auto packed = PackedWeight::Pack(w.data(), cols, k, kernel);
      ASSERT_TRUE(packed.ok());
      const auto elem = static_cast<size_t>(ElementBytes(kernel.precision));
      GuardedBuffer a(static_cast<size_t>(a_rows * k) * elem);
      GuardedBuffer panel(static_cast<size_t>(k * kPanelCols) * elem);
      std::memcpy(panel.as<void>(),
                  kernel.precision == GemmPrecision::kF32
                      ? static_cast<const void*>(packed->f32_panel(0))
                  : kernel.precision == GemmPrecision::kBF16
                      ? static_cast<const void*>(packed->bf16_panel(0))
                      : static_cast<const void*>(packed->int8_panel(0)),
                  static_cast<size_t>(k * kPanelCols) * elem);
      // c: rows of ldc = cols, the last row ending at the guard page.
      GuardedBuffer c(static_cast<size_t>(rows * cols) * 4);
      switch (kernel.precision) {
        case GemmPrecision::kF32:
          kernel.f32(a.as<float>(), k, rows, panel.as<float>(), k, c.as<float>(), cols, cols,
                     false);
          kernel.f32(a.as<float>(), k, rows, panel.as<float>(), k, c.as<float>(), cols, cols, true);
          break;
        case GemmPrecision::kBF16:
          kernel.bf16(a.as<uint16_t>(), k, rows, panel.as<uint16_t>(), k, c.as<float>(), cols,
                      cols);
          break;
        case GemmPrecision::kInt8:
          kernel.int8(a.as<uint8_t>(), k, rows, panel.as<int8_t>(), k, c.as<int32_t>(), cols, cols);
          break;
      }
      // a is all zeros: every output is 0 (nothing stray was summed in).
      for (int64_t i = 0; i < rows * cols; ++i) EXPECT_EQ(c.as<int32_t>()[i], 0) << i;
    }
  }
}

TEST(Gemm, PackRefusesEmptyShapesAndNonFiniteInt8Weights) {
  const std::vector<float> w = {1, INFINITY};
  EXPECT_FALSE(PackedWeight::Pack(w.data(), 0, 2, Reference(GemmPrecision::kF32)).ok());
  EXPECT_TRUE(PackedWeight::Pack(w.data(), 1, 2, Reference(GemmPrecision::kF32)).ok());
  EXPECT_EQ(PackedWeight::Pack(w.data(), 1, 2, Reference(GemmPrecision::kInt8)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // int8 sums stay exact in int32 only up to 66,311 inputs.
  const std::vector<float> wide(70000, 0.5f);
  EXPECT_EQ(
      PackedWeight::Pack(wide.data(), 1, 70000, Reference(GemmPrecision::kInt8)).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(PackedWeight::Pack(wide.data(), 1, 70000, Reference(GemmPrecision::kF32)).ok());
}

// The vectorised conversions give the scalar ones' bits (both round to nearest even), at every
// length around the vector width.
TEST(Gemm, FastConversionsMatchTheScalarOnes) {
  std::mt19937 rng(5);
  for (int64_t n : {1, 7, 15, 16, 17, 33, 384}) {
    const auto x = Random(static_cast<size_t>(n), rng, 3.0f);
    std::vector<uint16_t> want16(static_cast<size_t>(n)), got16(static_cast<size_t>(n));
    scalar::ToBf16()(x.data(), n, want16.data());
    BestToBf16()(x.data(), n, got16.data());
    EXPECT_EQ(got16, want16) << n;
    std::vector<uint8_t> want8(static_cast<size_t>(n)), got8(static_cast<size_t>(n));
    const float want_scale = scalar::Quantize()(x.data(), n, want8.data());
    EXPECT_EQ(BestQuantize()(x.data(), n, got8.data()), want_scale) << n;
    EXPECT_EQ(got8, want8) << n;
  }
  // Values at the edges: ties (1 + 2^-8 and 1 + 3 * 2^-8 round to even), infinities, the largest
  // floats (round to infinity), NaN (stays a NaN). Denormals are left out on purpose: the
  // AVX512-BF16 conversion reads them as zero (gemm_kernels.h).
  const float big = std::numeric_limits<float>::max();
  const std::vector<float> edge = {1.00390625f, 1.01171875f, -1.00390625f, INFINITY, -INFINITY,
                                   big,         -big,        0.0f,         -0.0f,    NAN};
  const int64_t ne = static_cast<int64_t>(edge.size());
  std::vector<uint16_t> want_edge(edge.size()), got_edge(edge.size());
  scalar::ToBf16()(edge.data(), ne, want_edge.data());
  BestToBf16()(edge.data(), ne, got_edge.data());
  for (size_t i = 0; i < edge.size(); ++i) {
    if (std::isnan(edge[i])) {
      EXPECT_TRUE(std::isnan(BFloat16ToFloat(got_edge[i])));
    } else {
      EXPECT_EQ(got_edge[i], want_edge[i]) << edge[i];
    }
  }
  // All zero, or too small to scale (a denormal peak): every byte 128, scale 0, in both.
  for (float v : {0.0f, 1e-40f}) {
    const std::vector<float> tiny(5, v);
    std::vector<uint8_t> q(5), r(5);
    EXPECT_EQ(BestQuantize()(tiny.data(), 5, q.data()), 0.0f);
    EXPECT_EQ(scalar::Quantize()(tiny.data(), 5, r.data()), 0.0f);
    EXPECT_EQ(q, std::vector<uint8_t>(5, 128));
    EXPECT_EQ(r, q);
  }
}

// The failure issue 16 found: a CPU with AVX2 served by generic kernels. The choice follows the
// project's SIMD level, so unless STRATA_SIMD forces a lower one the f32 path is vectorised, and
// bf16 / int8 have a fast path wherever the CPU has the instructions.
TEST(Gemm, NeverGenericOnACpuWithAvx2) {
  const GemmKernel* f32 = BestGemmKernel(GemmPrecision::kF32);
  ASSERT_NE(f32, nullptr);
  const char* forced = std::getenv("STRATA_SIMD");
  if (forced != nullptr && *forced != '\0') GTEST_SKIP() << "STRATA_SIMD=" << forced;
  const CpuFeatures& cpu = Cpu();
  if (Supports(SimdLevel::kAvx2)) {
    EXPECT_NE(f32->level, SimdLevel::kScalar) << f32->name;
  }
  if (Supports(SimdLevel::kAvx512)) {
    EXPECT_EQ(f32->level, SimdLevel::kAvx512) << f32->name;
  }
  if (Supports(SimdLevel::kAvx512) && (cpu.avx512_bf16 || cpu.amx_bf16)) {
    EXPECT_NE(BestGemmKernel(GemmPrecision::kBF16), nullptr);
  }
  if (Supports(SimdLevel::kAvx512) && (cpu.avx512_vnni || cpu.amx_int8)) {
    EXPECT_NE(BestGemmKernel(GemmPrecision::kInt8), nullptr);
  }
}

}  // namespace
}  // namespace strata::gpu::cpu
