#include "gpu/internal/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "gpu/internal/cpu_kernels.h"
#include "storage/half.h"

namespace strata::gpu::cpu {
namespace {

// x as bfloat16, rows of k_padded (zeros past k), m rounded up to the kernel's row_align.
const uint16_t* ToBf16(const float* x, int64_t m, int64_t k, int64_t kp, int64_t rows_padded,
                       GemmScratch& s) {
  s.a.resize(static_cast<size_t>(rows_padded * kp * 2));
  auto* a = reinterpret_cast<uint16_t*>(s.a.data());
  const ToBf16Fn round = BestToBf16();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows_padded; ++r) {
    uint16_t* row = a + r * kp;
    int64_t p = 0;
    if (r < m) {
      round(x + r * k, k, row);
      p = k;
    }
    std::fill(row + p, row + kp, uint16_t{0});
  }
  return a;
}

// x quantised per row (BestQuantize), scales in row_scales; a row that is not finite gets a NaN
// scale, so its outputs are NaN rather than the product of garbage.
const uint8_t* ToInt8(const float* x, int64_t m, int64_t k, int64_t kp, int64_t rows_padded,
                      GemmScratch& s) {
  s.a.resize(static_cast<size_t>(rows_padded * kp));
  s.row_scales.resize(static_cast<size_t>(rows_padded));
  uint8_t* a = s.a.data();
  const QuantizeFn quantize = BestQuantize();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows_padded; ++r) {
    uint8_t* row = a + r * kp;
    bool finite = true;
    for (int64_t p = 0; r < m && p < k; ++p) finite = finite && std::isfinite(x[r * k + p]);
    if (r >= m || !finite) {
      std::fill(row, row + kp, uint8_t{128});
      s.row_scales[static_cast<size_t>(r)] =
          finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    s.row_scales[static_cast<size_t>(r)] = quantize(x + r * k, k, row);
    std::fill(row + k, row + kp, uint8_t{128});
  }
  return a;
}

}  // namespace

void Gemm(const float* x, int64_t m, const PackedWeight& w, const float* bias, int act, float* y,
          GemmScratch& scratch) {
  if (m <= 0) return;
  // Nested inside another parallel region the work would run on one thread (OpenMP's default).
  assert(!omp_in_parallel() && "call Gemm from outside an OpenMP parallel region");
  const GemmKernel& kern = w.kernel();
  const int64_t n = w.n(), k = w.k(), kp = w.k_padded(), panels = w.panels();
  const int64_t rows_padded = RoundUp(m, kern.row_align);
  const uint16_t* a16 = nullptr;
  const uint8_t* a8 = nullptr;
  if (kern.precision == GemmPrecision::kBF16) a16 = ToBf16(x, m, k, kp, rows_padded, scratch);
  if (kern.precision == GemmPrecision::kInt8) a8 = ToInt8(x, m, k, kp, rows_padded, scratch);
  const float* row_scales = scratch.row_scales.data();

  // Jobs: row blocks x panel groups, enough of them to keep every thread busy.
  const int64_t row_blocks = (m + kGemmRowBlock - 1) / kGemmRowBlock;
  const int64_t threads = omp_get_max_threads();
  const int64_t wanted_groups =
      std::clamp<int64_t>((16 * threads + row_blocks - 1) / row_blocks, 1, panels);
  const int64_t per_group = (panels + wanted_groups - 1) / wanted_groups;
  const int64_t groups = (panels + per_group - 1) / per_group;
  const CpuKernels& rows_kern = BestCpuKernels();

#pragma omp parallel for schedule(dynamic)
  for (int64_t job = 0; job < row_blocks * groups; ++job) {
    const int64_t r0 = job / groups * kGemmRowBlock, rows = std::min(kGemmRowBlock, m - r0);
    const int64_t p0 = job % groups * per_group, p1 = std::min(panels, p0 + per_group);
    for (int64_t panel = p0; panel < p1; ++panel) {
      const int64_t c0 = panel * kPanelCols;
      const int cols = static_cast<int>(std::min<int64_t>(kPanelCols, n - c0));
      float* out = y + r0 * n + c0;
      switch (kern.precision) {
        case GemmPrecision::kF32:
          // k in blocks whose panel slice (kGemmDepthBlock x 128 bytes) stays in L1 while every
          // row of the block passes over it.
          for (int64_t p = 0; p < k; p += kGemmDepthBlock) {
            kern.f32(x + r0 * k + p, k, rows, w.f32_panel(panel) + p * kPanelCols,
                     std::min(kGemmDepthBlock, k - p), out, n, cols, p > 0);
          }
          break;
        case GemmPrecision::kBF16:
          kern.bf16(a16 + r0 * kp, kp, rows, w.bf16_panel(panel), kp, out, n, cols);
          break;
        case GemmPrecision::kInt8: {
          alignas(64) int32_t acc[kGemmRowBlock * kPanelCols];
          kern.int8(a8 + r0 * kp, kp, rows, w.int8_panel(panel), kp, acc, kPanelCols, cols);
          const float* ws = w.scales() + c0;
          const int32_t* sums = w.column_sums() + c0;
          for (int64_t r = 0; r < rows; ++r) {
            const float rs = row_scales[r0 + r];
            for (int j = 0; j < cols; ++j) {
              out[r * n + j] =
                  rs * ws[j] * static_cast<float>(acc[r * kPanelCols + j] - 128 * sums[j]);
            }
          }
          break;
        }
      }
    }
    if (bias != nullptr || act != 0) {
      const int64_t c0 = p0 * kPanelCols, c1 = std::min(n, p1 * kPanelCols);
      for (int64_t r = r0; r < r0 + rows; ++r) {
        rows_kern.bias_act_row(y + r * n + c0, bias != nullptr ? bias + c0 : nullptr, c1 - c0, act);
      }
    }
  }
}

}  // namespace strata::gpu::cpu
