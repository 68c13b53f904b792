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
