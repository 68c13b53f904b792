// A Linear layer's weight rearranged once, at model load, into the panels a GEMM microkernel reads
// (layouts in gpu/internal/gemm_kernels.h): kPanelCols output columns per panel, k padded to the
// precision's alignment, bf16 rounded to nearest even, int8 quantised symmetrically per output
// column (scale = max |w| / 127). Packing once is what a BLAS does on every call: for a 10-token
// question it was most of the time OpenBLAS spent (bench/RESULTS.md).
//
// Immutable after Pack(); safe to read from any number of threads.
#ifndef STRATA_GPU_INTERNAL_PACKED_WEIGHT_H_
#define STRATA_GPU_INTERNAL_PACKED_WEIGHT_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/internal/gemm_kernels.h"

namespace strata::gpu::cpu {

class PackedWeight final {
 public:
  // Packs w (n rows of k floats: out_features x in_features, as PyTorch stores a Linear weight)
  // for `kernel`. InvalidArgument for an empty shape or a non-finite value under int8;
  // ResourceExhausted when the panels cannot be allocated.
  static absl::StatusOr<PackedWeight> Pack(const float* w, int64_t n, int64_t k,
                                           const GemmKernel& kernel);

  PackedWeight(PackedWeight&&) noexcept = default;
  PackedWeight& operator=(PackedWeight&&) noexcept = default;
  PackedWeight(const PackedWeight&) = delete;
  PackedWeight& operator=(const PackedWeight&) = delete;

  [[nodiscard]] const GemmKernel& kernel() const { return *kernel_; }
  [[nodiscard]] int64_t n() const { return n_; }
  [[nodiscard]] int64_t k() const { return k_; }
  [[nodiscard]] int64_t k_padded() const { return k_padded_; }
  [[nodiscard]] int64_t panels() const { return (n_ + kPanelCols - 1) / kPanelCols; }
  [[nodiscard]] size_t bytes() const { return bytes_; }

  // Panel i (i < panels()), in the kernel's precision.
  [[nodiscard]] const float* f32_panel(int64_t i) const {
    return static_cast<const float*>(data_.get()) + i * k_padded_ * kPanelCols;
  }
  [[nodiscard]] const uint16_t* bf16_panel(int64_t i) const {
    return static_cast<const uint16_t*>(data_.get()) + i * k_padded_ * kPanelCols;
  }
  [[nodiscard]] const int8_t* int8_panel(int64_t i) const {
    return static_cast<const int8_t*>(data_.get()) + i * k_padded_ * kPanelCols;
  }
  // int8 only, n values each: the dequantisation scale and the sum of the quantised weights of
  // each output column (to take out the +128 the activations carry).
  [[nodiscard]] const float* scales() const { return scales_.data(); }
  [[nodiscard]] const int32_t* column_sums() const { return column_sums_.data(); }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  PackedWeight() = default;

  const GemmKernel* kernel_ = nullptr;
  int64_t n_ = 0, k_ = 0, k_padded_ = 0;
  size_t bytes_ = 0;
  std::unique_ptr<void, Free> data_;
  std::vector<float> scales_;
  std::vector<int32_t> column_sums_;
};

}  // namespace strata::gpu::cpu

#endif  // STRATA_GPU_INTERNAL_PACKED_WEIGHT_H_
