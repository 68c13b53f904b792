// The CPU backend's row kernels (softmax, bias + activation, layer norm),
// compiled three times - baseline x86-64, AVX2+FMA and AVX-512 - each in its own file with its
// own flags (cpu_kernels_*.cc include cpu_kernels.inc), and picked once at run time by what the
// CPU supports: the project's one SIMD level (storage/cpu_features.h, STRATA_SIMD).
#ifndef STRATA_GPU_INTERNAL_CPU_KERNELS_H_
#define STRATA_GPU_INTERNAL_CPU_KERNELS_H_

#include <cstdint>

namespace strata::gpu::cpu {

struct CpuKernels {
  const char* name;
  // In place: softmax of scale * row[0, n).
  void (*softmax_row)(float* row, int64_t n, float scale);
  // In place: exp(scale * (row - max row)), unnormalised; returns the sum.
  float (*exp_row)(float* row, int64_t n, float scale);
  // In place: y[j] = act(y[j] + b[j]) (b may be null; act as gpu::Activation: 0 none, 1 GELU,
  // 2 SiLU).
  void (*bias_act_row)(float* y, const float* b, int64_t n, int act);
  // out[j] = LayerNorm(x + residual)[j] * gamma[j] + beta[j] over n values (residual may be
  // null; out may alias x), mean and variance in fp64; scratch holds n floats.
  void (*layer_norm_row)(const float* x, const float* residual, const float* gamma,
                         const float* beta, float eps, int64_t n, float* scratch, float* out);
  // out[0, head_dim) = softmax(scale * q . k_j) . v_j over the first len rows of k and v (row j
  // at j * stride); scratch holds len floats.
  void (*attend_row)(const float* q, const float* k, const float* v, int64_t stride, int64_t len,
                     int64_t head_dim, float scale, float* scratch, float* out);
  // Partial attention of `group` query rows (q, head_dim floats apart) sharing one stretch of
  // len cached keys and values (row j at j * stride), each key and value row read once for all
  // of them: per query row r, m[r] = the largest scale * q_r . k_j, l[r] = sum_j exp(scale *
  // q_r . k_j - m[r]), o[r * head_dim + d] = sum_j exp(...) v_j[d] (unnormalised). Stretches
  // combine as in flash decoding (softmax = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c).
  // scratch holds group * len + 16 * head_dim floats.
  void (*attend_partial)(const float* q, int group, const float* k, const float* v, int64_t stride,
                         int64_t len, int64_t head_dim, float scale, float* scratch, float* m,
                         float* l, float* o);
};

const CpuKernels& BestCpuKernels();

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_CPU_KERNELS_H_
