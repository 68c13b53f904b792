// The CPU backend's matrix product: y = act(x · Wᵀ + bias) with W packed once (PackedWeight),
// in f32, bf16 (inputs rounded to bfloat16, fp32 sums) or int8 (activations quantised per row,
// weights per column, int32 sums, then scaled back), on the microkernel the weight was packed for.
//
// Work is split over the OpenMP threads in blocks of kGemmRowBlock rows x a group of panels, so a
// few rows (a question) still use every thread and many rows (a batch of passages) share each
// panel between the rows of a block.
#ifndef STRATA_GPU_INTERNAL_GEMM_H_
#define STRATA_GPU_INTERNAL_GEMM_H_

#include <cstdint>
#include <vector>

#include "gpu/internal/packed_weight.h"

namespace strata::gpu::cpu {

inline constexpr int64_t kGemmRowBlock = 96;     // a multiple of every kernel's rows and row_align
inline constexpr int64_t kGemmDepthBlock = 192;  // f32: k per pass over a row block
static_assert(kGemmRowBlock % 32 == 0 && kGemmRowBlock % 12 == 0 && kGemmRowBlock % 6 == 0,
              "a row block must hold whole AMX (32), AVX-512 (12) and AVX2 (6) row tiles");

// Buffers a Gemm call reuses between calls (the bf16 or int8 copy of x and its row scales).
struct GemmScratch {
  std::vector<uint8_t> a;
  std::vector<float> row_scales;
};

// x is m rows of w.k() floats, y m rows of w.n(); bias (w.n() floats) may be null; act as
// gpu::Activation (0 none, 1 GELU, 2 SiLU), applied after the bias. Call from outside an OpenMP
// parallel region; not thread-safe on one scratch. The int8 path maps a row of x that is not
// finite to NaN outputs rather than quantising garbage.
void Gemm(const float* x, int64_t m, const PackedWeight& w, const float* bias, int act, float* y,
          GemmScratch& scratch);

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_GEMM_H_
