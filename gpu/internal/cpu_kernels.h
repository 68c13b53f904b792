// The CPU backend's row kernels (softmax, bias + activation, one attention head),
// compiled three times - baseline x86-64, AVX2+FMA and AVX-512 - each in its own file with its
// own flags (cpu_kernels_*.cc include cpu_kernels.inc), and picked once at run time by what the
// CPU supports: the project's one SIMD level (storage/cpu_features.h, STRATA_SIMD).
#ifndef STRATA_GPU_INTERNAL_CPU_KERNELS_H_
#define STRATA_GPU_INTERNAL_CPU_KERNELS_H_

#include <cstdint>

namespace strata::gpu::cpu {

struct CpuKernels {
  const char* name;
  // In place: softmax of row[0, n).
  void (*softmax_row)(float* row, int64_t n);
  // In place: y[j] = act(y[j] + b[j]) (b may be null; act as gpu::Activation: 0 none, 1 GELU,
  // 2 SiLU).
  void (*bias_act_row)(float* y, const float* b, int64_t n, int act);
  // One (sequence, head) of attention: q rows `stride` floats apart, keys at +hidden, values at
  // +2*hidden; output rows out_stride apart. Scratch: keys_t (head_dim * (len + 15)), values
  // (len * head_dim) and scores (4 * (len + 15)) floats.
  void (*attend_head)(const float* q, int64_t len, int head_dim, int64_t stride, int64_t hidden,
                      float scale, float* keys_t, float* values, float* scores, float* out,
                      int64_t out_stride);
};

const CpuKernels& BestCpuKernels();

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_CPU_KERNELS_H_
