// The f32 GEMM microkernel for AVX-512 F (flags in gpu/CMakeLists.txt): 12 rows x 32 columns.
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

}  // namespace

F32Kernel F32() { return &Gemm<F32Traits>; }

}  // namespace strata::gpu::cpu::avx512
