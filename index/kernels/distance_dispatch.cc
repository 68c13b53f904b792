#include "index/kernels/distance.h"

namespace strata::kernels {
namespace internal {
const KernelTable* ScalarTable();
const KernelTable* Avx2Table();
const KernelTable* Avx512Table();
}  // namespace internal

const KernelTable* TableFor(SimdLevel level) {
  if (!Supports(level)) return nullptr;
  switch (level) {
    case SimdLevel::kScalar:
      return internal::ScalarTable();
    case SimdLevel::kAvx2:
      return internal::Avx2Table();
    case SimdLevel::kAvx512:
      return internal::Avx512Table();
  }
  return nullptr;
}

const KernelTable& Best() {
  static const KernelTable* best = TableFor(ProjectSimdLevel());
  return *best;
}

}  // namespace strata::kernels
