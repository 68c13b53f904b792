#include "gpu/internal/quant_kernels.h"

#include "storage/cpu_features.h"

namespace strata::gpu::cpu {
namespace scalar {
const QuantKernels* QuantTable();
}
namespace avx2 {
const QuantKernels* QuantTable();
}
namespace avx512 {
const QuantKernels* QuantTable();
}

const QuantKernels& ScalarQuantKernels() { return *scalar::QuantTable(); }

const QuantKernels& BestQuantKernels() {
  static const QuantKernels* best = [] {
    switch (ProjectSimdLevel()) {
      case SimdLevel::kAvx512:
        return avx512::QuantTable();
      case SimdLevel::kAvx2:
        return avx2::QuantTable();
      case SimdLevel::kScalar:
        break;
    }
    return scalar::QuantTable();
  }();
  return *best;
}

}  // namespace strata::gpu::cpu

namespace strata::gpu {

// Declared with the type facts in gpu/ggml_type.h; defined here, beside the kernels it runs, so
// that ggml_type.cc stays free of the CPU's kernels (the CUDA module links it).
void DequantizeRow(GgmlType t, const void* src, int64_t n, float* dst) {
  cpu::BestQuantKernels().dequantize_row(t, src, n, dst);
}

}  // namespace strata::gpu
