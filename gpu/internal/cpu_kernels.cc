#include "gpu/internal/cpu_kernels.h"

#include "storage/cpu_features.h"

namespace strata::gpu::cpu {
namespace scalar {
const CpuKernels* Table();
}
namespace avx2 {
const CpuKernels* Table();
}
namespace avx512 {
const CpuKernels* Table();
}

const CpuKernels& BestCpuKernels() {
  // One SIMD level for the whole project (storage/cpu_features.h), as the distance kernels use.
  static const CpuKernels* best = [] {
    switch (ProjectSimdLevel()) {
      case SimdLevel::kAvx512:
        return avx512::Table();
      case SimdLevel::kAvx2:
        return avx2::Table();
      case SimdLevel::kScalar:
        break;
    }
    return scalar::Table();
  }();
  return *best;
}

}  // namespace strata::gpu::cpu
