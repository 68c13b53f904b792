// Vectorisable float math for the CPU backend: exp and erf as branch-free polynomials that GCC
// can inline into SIMD loops (libm's expf/erff are scalar calls). Accuracy: FastExp within
// ~2 ulp over [-87, 88]; FastErf within 1.5e-7 absolute (Abramowitz & Stegun 7.1.26 with FastExp)
// - well inside what the encoder needs and what the tests against double-precision loops allow.
#ifndef STRATA_GPU_INTERNAL_CPU_MATH_H_
#define STRATA_GPU_INTERNAL_CPU_MATH_H_

#include <cstdint>
#include <cstring>

namespace strata::gpu::cpu {
// Private to each file that includes it (the kernel files, one per instruction set): see
// index/kernels/internal/scalar_inl.h for why.
namespace {

inline float FastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2].
  // Round to nearest by adding and removing 1.5 * 2^23 (no libm call, so the loop vectorises).
  constexpr float kShift = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kShift) - kShift;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln 2 split in two for accuracy
  // exp(r) by its Taylor/minimax polynomial (Cephes expf coefficients).
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

inline float FastErf(float x) {
  const float sign = x < 0 ? -1.0f : 1.0f;
  const float a = x * sign;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float y = 1.061405429f;
  y = y * t - 1.453152027f;
  y = y * t + 1.421413741f;
  y = y * t - 0.284496736f;
  y = y * t + 0.254829592f;
  y = 1.0f - y * t * FastExp(-a * a);
  return sign * y;
}

// GELU, erf form (BERT's "gelu").
inline float Gelu(float x) { return 0.5f * x * (1.0f + FastErf(x * 0.70710678118654752f)); }
inline float Silu(float x) { return x / (1.0f + FastExp(-x)); }

}  // namespace
}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_CPU_MATH_H_
