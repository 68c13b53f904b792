// Bidirectional attention for one (sequence, head) on the CPU, on the f32 GEMM microkernel:
// scores = Q·Kᵀ in blocks of kGemmRowBlock queries, exp of the scaled scores per row, out = P·V,
// then each output row divided by its row's sum (the softmax's normalisation, moved to the
// narrower side). Keys and values are first packed into the kernel's 32-column panels (zeros past
// the sequence and past head_dim). One object per thread: it owns that thread's scratch.
#ifndef STRATA_GPU_INTERNAL_HEAD_ATTENTION_H_
#define STRATA_GPU_INTERNAL_HEAD_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "gpu/internal/cpu_kernels.h"
#include "gpu/internal/gemm.h"

namespace strata::gpu::cpu {

class HeadAttention final {
 public:
  HeadAttention(const GemmKernel& gemm, const CpuKernels& rows) : gemm_(gemm), rows_(rows) {}

  // q: the head's query for token 0 of the sequence, rows `stride` floats apart; its keys lie at
  // +hidden and its values at +2*hidden. Writes len rows of head_dim to out, out_stride apart.
  void Run(const float* q, int64_t len, int head_dim, int64_t stride, int64_t hidden, float scale,
           float* out, int64_t out_stride);

 private:
  const GemmKernel& gemm_;
  const CpuKernels& rows_;
  std::vector<float> keys_, values_, scores_;
  float inv_sums_[kGemmRowBlock];
};

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_HEAD_ATTENTION_H_
