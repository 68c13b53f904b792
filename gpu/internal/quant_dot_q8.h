// Products of GGUF block-quantised weight rows with activations quantised to int8, the way
// llama.cpp runs its CPU matrix-vector products: each run of 32 activations becomes 32 int8
// codes and a scale (d = max|x| / 127), so a weight block times an activation block is one
// integer dot product (VPDPBUSD) and one scaling, instead of widening every weight to a float.
//
// Per block, with weights w = d_w * u + c_w (u the stored codes, unsigned here: Q4_0 u = q and
// c_w = -8 d_w; Q4_1 c_w = min; Q8_0 u = q + 128 and c_w = -128 d_w) and activations
// x ~ d_x * q_x:   sum w x ~ d_w d_x (sum u q_x) + c_w (d_x sum q_x).
// The approximation is the activations' rounding (half a code, relative 1/254 of the block's
// largest); the weights are used exactly. Only Q8_0, Q4_0 and Q4_1 have this path.
//
// The scalar kernel is the reference; the AVX512-VNNI one must agree with it to float rounding
// (the integer parts are exact in both).
#ifndef STRATA_GPU_INTERNAL_QUANT_DOT_Q8_H_
#define STRATA_GPU_INTERNAL_QUANT_DOT_Q8_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gpu/ggml_type.h"

namespace strata::gpu::cpu {

inline constexpr int kQ8Block = 32;

// Rows of quantised activations as the kernels read them (into a Q8Activations).
struct Q8View {
  int64_t rows = 0, n = 0;
  const int8_t* q = nullptr;   // rows * n codes
  const float* d = nullptr;    // rows * n/32 scales
  const float* sum = nullptr;  // rows * n/32: d * (sum of the block's codes)
};

// m rows of n activations (n a multiple of 32), quantised per 32.
struct Q8Activations {
  int64_t rows = 0, n = 0;
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<float> sum;
  // Rows [first, first + count) (clipped to the rows there are).
  [[nodiscard]] Q8View Rows(int64_t first, int64_t count) const {
    const int64_t b = n / 32;
    return {std::min(count, rows - first), n, q.data() + first * n, d.data() + first * b,
            sum.data() + first * b};
  }
  [[nodiscard]] Q8View All() const { return Rows(0, rows); }
};

// Fills `out` from x [m, n]; n must be a multiple of 32. Reuses out's memory.
void QuantizeActivations(const float* x, int64_t m, int64_t n, Q8Activations* out);

[[nodiscard]] bool Q8DotSupports(GgmlType t);

struct Q8DotKernels {
  const char* name;
  // out[r * ldo + j] = row j (of `count`, `stride` bytes apart) · activation row r, for every
  // row r of x (at most 8 rows).
  void (*dot_rows)(GgmlType t, const uint8_t* rows, size_t stride, int64_t count, const Q8View& x,
                   float* out, int64_t ldo);
};

[[nodiscard]] const Q8DotKernels& ScalarQ8DotKernels();
// The fast kernel where this CPU has one (AVX512-VNNI), else null: without it the int8 path
// would be slower than the float one, so callers keep the float path.
[[nodiscard]] const Q8DotKernels* FastQ8DotKernels();

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_QUANT_DOT_Q8_H_
