// The AVX-512 GEMM microkernel, written once for the three precisions: R rows x 32 columns of
// accumulators (2R zmm registers; R = 12 leaves room for the two panel vectors and a broadcast).
// Each step reads one k-group of the panel (1 float, 2 bf16 or 4 int8 per column; 2 x 64 bytes)
// and broadcasts the matching group of each row of `a`. Included only by the files compiled with
// the flags their Traits need (gemm_kernels_avx512*.cc); Traits supplies:
//   A, B, C        element types of a, panel and c
//   Vec            the accumulators' type, __m512 or __m512i
//   In             the operands' type (__m512i for bf16 and int8)
//   kDepth         k values per column per step
//   Zero()         Vec of zeros
//   Dot(acc, a, b) acc + the products of the broadcast a-group with b, per lane
//   Broadcast(p)   the a-group at p in every lane
//   Load(p)        64 aligned bytes of the panel
//   Store(c, mask, v), LoadC(c, mask)
#ifndef STRATA_GPU_INTERNAL_GEMM_AVX512_BLOCK_H_
#define STRATA_GPU_INTERNAL_GEMM_AVX512_BLOCK_H_

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "gpu/internal/gemm_kernels.h"

namespace strata::gpu::cpu::avx512 {

inline constexpr int kBlockRows = 12;

// The row loops are fold expressions over compile-time indices, so the accumulator arrays are
// scalarised into registers (as plain loops, unrolled only late, they spilled to the stack).
template <class T, int R>
void Block(const typename T::A* a, int64_t lda, const typename T::B* panel, int64_t k,
           typename T::C* c, int64_t ldc, int cols, bool accumulate) {
  using Rows = std::make_integer_sequence<int, R>;
  const __mmask16 m0 = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  const __mmask16 m1 =
      static_cast<__mmask16>(cols >= 32 ? 0xffff : ((1u << std::max(cols - 16, 0)) - 1));
  typename T::Vec acc0[R], acc1[R];
  const auto init = [&]<int... I>(std::integer_sequence<int, I...>) {
    if (accumulate) {
      ((acc0[I] = T::LoadC(c + I * ldc, m0), acc1[I] = T::LoadC(c + I * ldc + 16, m1)), ...);
    } else {
      ((acc0[I] = T::Zero(), acc1[I] = T::Zero()), ...);
    }
  };
  init(Rows{});
  constexpr int64_t kHalf = 16 * T::kDepth;  // panel elements of columns 0-15 per step
  constexpr int64_t kAhead = 8 * T::kDepth;  // prefetch distance, in k
  const auto step = [&]<int... I>(std::integer_sequence<int, I...>, int64_t p, typename T::In b0,
                                  typename T::In b1) {
    (
        [&] {
          const typename T::In av = T::Broadcast(a + I * lda + p);
          acc0[I] = T::Dot(acc0[I], av, b0);
          acc1[I] = T::Dot(acc1[I], av, b1);
        }(),
        ...);
  };
  for (int64_t p = 0; p < k; p += T::kDepth) {
    const auto* ahead = reinterpret_cast<const char*>(panel + (p + kAhead) * kPanelCols);
    _mm_prefetch(ahead, _MM_HINT_T0);
    _mm_prefetch(ahead + 64, _MM_HINT_T0);
    step(Rows{}, p, T::Load(panel + p * kPanelCols), T::Load(panel + p * kPanelCols + kHalf));
  }
  const auto store = [&]<int... I>(std::integer_sequence<int, I...>) {
    ((T::Store(c + I * ldc, m0, acc0[I]), T::Store(c + I * ldc + 16, m1, acc1[I])), ...);
  };
  store(Rows{});
}

// The kernel: kBlockRows rows at a time, then the rows left over.
template <class T>
void Gemm(const typename T::A* a, int64_t lda, int64_t rows, const typename T::B* panel, int64_t k,
          typename T::C* c, int64_t ldc, int cols, bool accumulate) {
  using BlockFn = void (*)(const typename T::A*, int64_t, const typename T::B*, int64_t,
                           typename T::C*, int64_t, int, bool);
  static constexpr BlockFn kBlocks[kBlockRows + 1] = {
      nullptr,       &Block<T, 1>,  &Block<T, 2>, &Block<T, 3>, &Block<T, 4>,
      &Block<T, 5>,  &Block<T, 6>,  &Block<T, 7>, &Block<T, 8>, &Block<T, 9>,
      &Block<T, 10>, &Block<T, 11>, &Block<T, 12>};
  for (int64_t r = 0; r < rows; r += kBlockRows) {
    const int64_t n = std::min<int64_t>(kBlockRows, rows - r);
    kBlocks[n](a + r * lda, lda, panel, k, c + r * ldc, ldc, cols, accumulate);
  }
}

// bf16 and int8 never accumulate (their whole k is one pass): their kernels' signature.
template <class T>
void GemmOnce(const typename T::A* a, int64_t lda, int64_t rows, const typename T::B* panel,
              int64_t k, typename T::C* c, int64_t ldc, int cols) {
  Gemm<T>(a, lda, rows, panel, k, c, ldc, cols, false);
}

}  // namespace strata::gpu::cpu::avx512

#endif  // STRATA_GPU_INTERNAL_GEMM_AVX512_BLOCK_H_
