// The CPU backend's product with a weight kept in a GGUF block type: y = x · Wᵀ, W n rows of k
// values, never expanded in memory.
//  - A few rows of x (decoding: one token per sequence): every output is a dot product of a
//    quantised weight row with x, blocks unpacked in registers (QuantKernels::dot_row); threads
//    split the weight's rows, so the weights stream through once per call.
//  - More rows (a prompt): each thread unpacks a panel of 32 weight rows into the f32 GEMM's
//    panel layout (gpu/internal/gemm_kernels.h) and runs the f32 microkernel over all rows of x,
//    so a panel is unpacked once per call however long the prompt.
//  - A few rows with int8 activations (QuantMatrix::int8_activations, where this CPU has the
//    kernel): x quantised once per call, then integer block products (quant_dot_q8.h).
// fp32 sums in both, in a different order: results agree to rounding, not bit for bit.
#ifndef STRATA_GPU_INTERNAL_QUANT_MATMUL_H_
#define STRATA_GPU_INTERNAL_QUANT_MATMUL_H_

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "absl/status/statusor.h"
#include "gpu/ggml_type.h"

namespace strata::gpu::cpu {

// A weight's rows in their GGUF type, copied into 64-byte aligned memory. Immutable; safe to
// read from any number of threads.
class QuantMatrix final {
 public:
  // InvalidArgument when k is not a whole number of blocks or n < 1; ResourceExhausted when the
  // copy cannot be allocated. int8_activations: products of a few rows quantise the activations
  // to int8 per 32 (gpu/internal/quant_dot_q8.h) where the type and this CPU have that kernel.
  static absl::StatusOr<QuantMatrix> Copy(GgmlType type, const void* rows, int64_t n, int64_t k,
                                          bool int8_activations = false);

  [[nodiscard]] GgmlType type() const { return type_; }
  [[nodiscard]] int64_t n() const { return n_; }
  [[nodiscard]] int64_t k() const { return k_; }
  [[nodiscard]] size_t row_bytes() const { return row_bytes_; }
  [[nodiscard]] bool int8_activations() const { return int8_activations_; }
  [[nodiscard]] size_t bytes() const { return row_bytes_ * static_cast<size_t>(n_); }
  [[nodiscard]] const uint8_t* row(int64_t i) const {
    return static_cast<const uint8_t*>(data_.get()) + static_cast<size_t>(i) * row_bytes_;
  }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  QuantMatrix() = default;
  GgmlType type_ = GgmlType::kF32;
  int64_t n_ = 0, k_ = 0;
  size_t row_bytes_ = 0;
  bool int8_activations_ = false;
  std::unique_ptr<void, Free> data_;
};

// Rows at or below this count take the dot-product path.
inline constexpr int64_t kQuantGemvRows = 8;
// With int8 activations, rows at or below this count do (in groups of 8): a batch of 16
// decoding sequences stays on integer block products.
inline constexpr int64_t kQuantInt8Rows = 16;

// y[m, n] = x[m, k] · Wᵀ (+ bias, then act as gpu::Activation: 0 none, 1 GELU, 2 SiLU), on the
// decoder's thread pool (gpu/internal/thread_pool.h).
void QuantMatmul(const float* x, int64_t m, const QuantMatrix& w, const float* bias, int act,
                 float* y);

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_QUANT_MATMUL_H_
