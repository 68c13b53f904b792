// The f32 GEMM microkernel for AVX2 + FMA (flags in gpu/CMakeLists.txt): 6 rows x 16 columns of
// fp32 accumulators (12 of the 16 ymm registers), each half of a 32-column panel in turn.
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "gpu/internal/gemm_kernels.h"

namespace strata::gpu::cpu::avx2 {
namespace {

constexpr int kRows = 6;

// Fold expressions over compile-time row indices keep the accumulators in registers (see
// gemm_avx512_block.h), and masked loads and stores handle a narrow last panel without a buffer.
template <int R>
void Block(const float* a, int64_t lda, const float* panel, int64_t k, float* c, int64_t ldc,
           int cols, bool accumulate) {
  using Rows = std::make_integer_sequence<int, R>;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  __m256 acc0[R], acc1[R];
  const auto init = [&]<int... I>(std::integer_sequence<int, I...>) {
    if (accumulate) {
      ((acc0[I] = _mm256_maskload_ps(c + I * ldc, m0),
        acc1[I] = _mm256_maskload_ps(c + I * ldc + 8, m1)),
       ...);
    } else {
      ((acc0[I] = _mm256_setzero_ps(), acc1[I] = _mm256_setzero_ps()), ...);
    }
  };
  init(Rows{});
  const auto step = [&]<int... I>(std::integer_sequence<int, I...>, int64_t p, __m256 b0,
                                  __m256 b1) {
    (
        [&] {
          const __m256 av = _mm256_broadcast_ss(a + I * lda + p);
          acc0[I] = _mm256_fmadd_ps(av, b0, acc0[I]);
          acc1[I] = _mm256_fmadd_ps(av, b1, acc1[I]);
        }(),
        ...);
  };
  for (int64_t p = 0; p < k; ++p) {
    step(Rows{}, p, _mm256_loadu_ps(panel + p * kPanelCols),
         _mm256_loadu_ps(panel + p * kPanelCols + 8));
  }
  const auto store = [&]<int... I>(std::integer_sequence<int, I...>) {
    ((_mm256_maskstore_ps(c + I * ldc, m0, acc0[I]),
      _mm256_maskstore_ps(c + I * ldc + 8, m1, acc1[I])),
     ...);
  };
  store(Rows{});
}

using BlockFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int, bool);
constexpr BlockFn kBlocks[kRows + 1] = {nullptr,   &Block<1>, &Block<2>, &Block<3>,
                                        &Block<4>, &Block<5>, &Block<6>};

// The panel's two 16-column halves are separate passes: a 16-wide half keeps 6 rows in registers,
// where 32 columns would leave room for only 3.
void GemmF32(const float* a, int64_t lda, int64_t rows, const float* panel, int64_t k, float* c,
             int64_t ldc, int cols, bool accumulate) {
  for (int half = 0; half < 2 && half * 16 < cols; ++half) {
    const int width = std::min(16, cols - half * 16);
    for (int64_t r = 0; r < rows; r += kRows) {
      const int64_t n = std::min<int64_t>(kRows, rows - r);
      kBlocks[n](a + r * lda, lda, panel + half * 16, k, c + r * ldc + half * 16, ldc, width,
                 accumulate);
    }
  }
}

}  // namespace

F32Kernel F32() { return &GemmF32; }

}  // namespace strata::gpu::cpu::avx2
