#include <cstdlib>
#include <cstring>

#include "index/kernels/distance.h"
#include "storage/log.h"

namespace strata::kernels {
namespace internal {
const KernelTable* ScalarTable();
const KernelTable* Avx2Table();
const KernelTable* Avx512Table();
}  // namespace internal

const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "?";
}

const KernelTable* TableFor(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return internal::ScalarTable();
    case SimdLevel::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                     __builtin_cpu_supports("f16c")
                 ? internal::Avx2Table()
                 : nullptr;
    case SimdLevel::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl")
                 ? internal::Avx512Table()
                 : nullptr;
  }
  return nullptr;
}

const KernelTable& Best() {
  static const KernelTable* best = [] {
    const char* force = std::getenv("STRATA_SIMD");
    if (force != nullptr && *force != '\0') {
      for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
        if (std::strcmp(force, SimdLevelName(l)) == 0) {
          if (const KernelTable* t = TableFor(l)) return t;
          Log(LogLevel::kWarning, "STRATA_SIMD=%s is not supported on this CPU; ignoring", force);
        }
      }
    }
    for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2}) {
      if (const KernelTable* t = TableFor(l)) return t;
    }
    return TableFor(SimdLevel::kScalar);
  }();
  return *best;
}

}  // namespace strata::kernels
