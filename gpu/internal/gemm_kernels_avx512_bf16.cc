// The bf16 GEMM microkernel for AVX512-BF16 (flags in gpu/CMakeLists.txt): 12 rows x 32 columns,
// one VDPBF16PS per 16 columns and pair of k (two products summed into an fp32 lane).
#include <cstring>

#include "gpu/internal/gemm_avx512_block.h"

namespace strata::gpu::cpu::avx512 {
namespace {

struct Bf16Traits {
  using A = uint16_t;
  using B = uint16_t;
  using C = float;
  using Vec = __m512;
  using In = __m512i;
  static constexpr int kDepth = 2;
  static Vec Zero() { return _mm512_setzero_ps(); }
  static __m512i Broadcast(const uint16_t* p) {
    int32_t pair;
    std::memcpy(&pair, p, 4);
    return _mm512_set1_epi32(pair);
  }
  static __m512i Load(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static Vec Dot(Vec acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
  }
  static void Store(float* c, __mmask16 m, Vec v) { _mm512_mask_storeu_ps(c, m, v); }
  static Vec LoadC(const float* c, __mmask16 m) { return _mm512_maskz_loadu_ps(m, c); }
};

void RoundToBf16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)v);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
    _mm256_mask_storeu_epi16(out + i, m, (__m256i)v);
  }
}

}  // namespace

Bf16Kernel Bf16() { return &GemmOnce<Bf16Traits>; }
ToBf16Fn ToBf16() { return &RoundToBf16; }

}  // namespace strata::gpu::cpu::avx512
