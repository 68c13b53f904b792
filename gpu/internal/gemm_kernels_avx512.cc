// The f32 GEMM microkernel for AVX-512 F (flags in gpu/CMakeLists.txt): 12 rows x 32 columns.
#include <cstring>
#include <limits>

// GCC 12's AVX-512 intrinsics fill "don't care" operands with self-initialised values, which its
// own -Wuninitialized then reports in the quantiser below (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "gpu/internal/gemm_avx512_block.h"

namespace strata::gpu::cpu::avx512 {
namespace {

struct F32Traits {
  using A = float;
  using B = float;
  using C = float;
  using Vec = __m512;
  using In = __m512;
  static constexpr int kDepth = 1;
  static Vec Zero() { return _mm512_setzero_ps(); }
  static Vec Broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Vec Load(const float* p) { return _mm512_loadu_ps(p); }
  static Vec Dot(Vec acc, Vec a, Vec b) { return _mm512_fmadd_ps(a, b, acc); }
  static void Store(float* c, __mmask16 m, Vec v) { _mm512_mask_storeu_ps(c, m, v); }
  static Vec LoadC(const float* c, __mmask16 m) { return _mm512_maskz_loadu_ps(m, c); }
};

// int8 activations for the int8 kernels (AVX-512 F only, so it serves every AVX-512 CPU).
float QuantizeRow(const float* x, int64_t n, uint8_t* out) {
  __m512 peak = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) peak = _mm512_max_ps(peak, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
  peak = _mm512_max_ps(peak, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail, x + i)));
  const float top = _mm512_reduce_max_ps(peak);
  if (top < std::numeric_limits<float>::min()) {  // zero (or denormal: 127 / top would overflow)
    std::memset(out, 128, static_cast<size_t>(n));
    return 0;
  }
  const __m512 inv = _mm512_set1_ps(127.0f / top);
  const __m512i offset = _mm512_set1_epi32(128);
  const auto quantize = [&](__m512 v) {  // round to nearest even, as nearbyint
    return _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), offset);
  };
  for (i = 0; i + 16 <= n; i += 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm512_cvtepi32_epi8(quantize(_mm512_loadu_ps(x + i))));
  }
  if (i < n)
    _mm512_mask_cvtepi32_storeu_epi8(out + i, tail, quantize(_mm512_maskz_loadu_ps(tail, x + i)));
  return top / 127.0f;
}

}  // namespace

F32Kernel F32() { return &Gemm<F32Traits>; }
QuantizeFn Quantize() { return &QuantizeRow; }

}  // namespace strata::gpu::cpu::avx512
