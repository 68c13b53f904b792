#include "gpu/internal/cpu_kernels.h"

#include <cstdlib>
#include <cstring>

#include "storage/log.h"

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

namespace {
const CpuKernels* Supported(const char* name) {
  if (std::strcmp(name, "avx512") == 0) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") ? avx512::Table()
                                                                              : nullptr;
  }
  if (std::strcmp(name, "avx2") == 0) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? avx2::Table()
                                                                           : nullptr;
  }
  return scalar::Table();
}
}  // namespace

const CpuKernels& BestCpuKernels() {
  static const CpuKernels* best = [] {
    const char* force = std::getenv("STRATA_SIMD");
    if (force != nullptr && *force != '\0') {
      if (const CpuKernels* k = Supported(force)) return k;
      Log(LogLevel::kWarning, "STRATA_SIMD=%s is not supported on this CPU; ignoring", force);
    }
    for (const char* name : {"avx512", "avx2"}) {
      if (const CpuKernels* k = Supported(name)) return k;
    }
    return scalar::Table();
  }();
  return *best;
}

}  // namespace strata::gpu::cpu
