// The int8 GEMM microkernel for AVX512-VNNI (flags in gpu/CMakeLists.txt): 12 rows x 32 columns,
// one VPDPBUSD per 16 columns and quad of k (unsigned activations times signed weights, int32).
#include <cstring>

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

}  // namespace

Int8Kernel Int8() { return &GemmOnce<Int8Traits>; }

}  // namespace strata::gpu::cpu::avx512
