// The GEMM microkernels in plain C++: the references every SIMD kernel is tested against, and the
// f32 path of CPUs without AVX2 (built for baseline x86-64, so SSE at best).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "gpu/internal/gemm_kernels.h"
#include "storage/half.h"

namespace strata::gpu::cpu::scalar {
namespace {

void GemmF32(const float* a, int64_t lda, int64_t rows, const float* panel, int64_t k, float* c,
             int64_t ldc, int cols, bool accumulate) {
  for (int64_t r = 0; r < rows; ++r) {
    float acc[kPanelCols] = {};
    if (accumulate) std::copy_n(c + r * ldc, cols, acc);
    for (int64_t p = 0; p < k; ++p) {
      const float av = a[r * lda + p];
      const float* b = panel + p * kPanelCols;
      for (int j = 0; j < kPanelCols; ++j) acc[j] += av * b[j];
    }
    std::copy_n(acc, cols, c + r * ldc);
  }
}

void GemmBf16(const uint16_t* a, int64_t lda, int64_t rows, const uint16_t* panel, int64_t k,
              float* c, int64_t ldc, int cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float acc[kPanelCols] = {};
    for (int64_t p = 0; p < k; p += 2) {
      const float a0 = BFloat16ToFloat(a[r * lda + p]), a1 = BFloat16ToFloat(a[r * lda + p + 1]);
      const uint16_t* b = panel + (p / 2) * 2 * kPanelCols;
      for (int j = 0; j < kPanelCols; ++j) {
        acc[j] += a0 * BFloat16ToFloat(b[2 * j]) + a1 * BFloat16ToFloat(b[2 * j + 1]);
      }
    }
    std::copy_n(acc, cols, c + r * ldc);
  }
}

void GemmInt8(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* panel, int64_t k,
              int32_t* c, int64_t ldc, int cols) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t acc[kPanelCols] = {};
    for (int64_t p = 0; p < k; p += 4) {
      const int8_t* b = panel + (p / 4) * 4 * kPanelCols;
      for (int j = 0; j < kPanelCols; ++j) {
        for (int e = 0; e < 4; ++e) acc[j] += int32_t{a[r * lda + p + e]} * b[4 * j + e];
      }
    }
    std::copy_n(acc, cols, c + r * ldc);
  }
}

void RoundToBf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToBFloat16(x[i]);
}

float QuantizeRow(const float* x, int64_t n, uint8_t* out) {
  float peak = 0;
  for (int64_t i = 0; i < n; ++i) peak = std::max(peak, std::fabs(x[i]));
  if (peak < std::numeric_limits<float>::min()) {  // zero (or denormal: 127 / peak overflows)
    std::fill_n(out, n, uint8_t{128});
    return 0;
  }
  const float inv = 127.0f / peak;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<uint8_t>(static_cast<int>(std::nearbyint(x[i] * inv)) + 128);
  }
  return peak / 127.0f;
}

}  // namespace

F32Kernel F32() { return &GemmF32; }
ToBf16Fn ToBf16() { return &RoundToBf16; }
QuantizeFn Quantize() { return &QuantizeRow; }
Bf16Kernel Bf16() { return &GemmBf16; }
Int8Kernel Int8() { return &GemmInt8; }

}  // namespace strata::gpu::cpu::scalar
