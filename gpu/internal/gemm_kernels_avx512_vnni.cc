// The int8 GEMM microkernel for AVX512-VNNI (flags in gpu/CMakeLists.txt): 12 rows x 32 columns,
// one VPDPBUSD per 16 columns and quad of k (unsigned activations times signed weights, int32).
#include <cstring>

// GCC 12's AVX-512 intrinsics fill "don't care" operands with self-initialised values, which its
// own -Wuninitialized then reports in this file's conversion code (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "gpu/internal/gemm_avx512_block.h"

namespace strata::gpu::cpu::avx512 {
namespace {

struct Int8Traits {
  using A = uint8_t;
  using B = int8_t;
  using C = int32_t;
  using Vec = __m512i;
  using In = __m512i;
  static constexpr int kDepth = 4;
  static Vec Zero() { return _mm512_setzero_si512(); }
  static Vec Broadcast(const uint8_t* p) {
    int32_t quad;
    std::memcpy(&quad, p, 4);
    return _mm512_set1_epi32(quad);
  }
  static Vec Load(const int8_t* p) { return _mm512_loadu_si512(p); }
  static Vec Dot(Vec acc, Vec a, Vec b) { return _mm512_dpbusd_epi32(acc, a, b); }
  static void Store(int32_t* c, __mmask16 m, Vec v) { _mm512_mask_storeu_epi32(c, m, v); }
  static Vec LoadC(const int32_t* c, __mmask16 m) { return _mm512_maskz_loadu_epi32(m, c); }
};

float QuantizeRow(const float* x, int64_t n, uint8_t* out) {
  __m512 peak = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) peak = _mm512_max_ps(peak, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
  peak = _mm512_max_ps(peak, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail, x + i)));
  const float top = _mm512_reduce_max_ps(peak);
  if (top == 0) {
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

Int8Kernel Int8() { return &GemmOnce<Int8Traits>; }
QuantizeFn Quantize() { return &QuantizeRow; }

}  // namespace strata::gpu::cpu::avx512
