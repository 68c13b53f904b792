// Kernels over GGUF's block-quantised rows (layouts in gpu/ggml_type.h): dequantise a row, and
// the dot product of a quantised row with float activations, which is how the decoder's matrix
// products read their weights (never expanded to floats in memory). Written once in
// quant_kernels.inc and compiled per instruction set (scalar, AVX2+FMA, AVX-512) like the row
// kernels; picked by the project's one SIMD level. The scalar build is the reference the others
// are tested against.
#ifndef STRATA_GPU_INTERNAL_QUANT_KERNELS_H_
#define STRATA_GPU_INTERNAL_QUANT_KERNELS_H_

#include <cstdint>

#include "gpu/ggml_type.h"

namespace strata::gpu::cpu {

struct QuantKernels {
  const char* name;
  // dst[0, n) = the row's values; n a multiple of the type's block size.
  void (*dequantize_row)(GgmlType t, const void* src, int64_t n, float* dst);
  // sum over i < n of row[i] * x[i], in fp32, blockwise.
  float (*dot_row)(GgmlType t, const void* row, const float* x, int64_t n);
  // out[r * ldo + j] = dot_row(row j, x row r) for `count` weight rows `stride` bytes apart and
  // m activation rows of n (contiguous): a block unpacked once serves every activation row
  // where the ISA has a kernel for it.
  void (*dot_rows)(GgmlType t, const void* rows, size_t stride, int64_t count, const float* x,
                   int64_t m, int64_t n, float* out, int64_t ldo);
  // The GEMM's packed weight panel (gpu/internal/gemm_kernels.h): panel[i * kQuantPanelCols + j]
  // = value i of weight row j, for `cols` (<= kQuantPanelCols) rows `stride` bytes apart, and 0
  // in the panel's other columns; n values per row, a multiple of the type's block size. Rows
  // are unpacked a block at a time into a tile that is written out whole cache lines at a time.
  void (*dequantize_panel)(GgmlType t, const void* rows, size_t stride, int cols, int64_t n,
                           float* panel);
};

inline constexpr int kQuantPanelCols = 32;

[[nodiscard]] const QuantKernels& BestQuantKernels();
[[nodiscard]] const QuantKernels& ScalarQuantKernels();

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_QUANT_KERNELS_H_
