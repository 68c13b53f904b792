// The scalar reference: plain loops, the ground truth every SIMD variant is tested against.
#include "index/kernels/internal/scalar_inl.h"

namespace strata::kernels::internal {
namespace {

template <typename B>
float L2Float(const void* a, const void* b, size_t d) {
  return L2FloatScalar(static_cast<const float*>(a), static_cast<const B*>(b), d);
}
template <typename B>
float IPFloat(const void* a, const void* b, size_t d) {
  return -DotFloatScalar(static_cast<const float*>(a), static_cast<const B*>(b), d);
}
float L2U(const void* a, const void* b, size_t d) {
  return static_cast<float>(
      L2IntScalar(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), d));
}
float IPU(const void* a, const void* b, size_t d) {
  return -static_cast<float>(
      DotIntScalar(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), d));
}
float L2I(const void* a, const void* b, size_t d) {
  return static_cast<float>(
      L2IntScalar(static_cast<const int8_t*>(a), static_cast<const int8_t*>(b), d));
}
float IPI(const void* a, const void* b, size_t d) {
  return -static_cast<float>(
      DotIntScalar(static_cast<const int8_t*>(a), static_cast<const int8_t*>(b), d));
}

constexpr KernelTable kTable =
    MakeTable<L2Float<float>, IPFloat<float>, L2U, IPU, L2I, IPI, L2Float<uint16_t>,
              IPFloat<uint16_t>, ToHalfScalar>(SimdLevel::kScalar);

}  // namespace

const KernelTable* ScalarTable() { return &kTable; }

}  // namespace strata::kernels::internal
