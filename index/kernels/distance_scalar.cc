// The scalar reference: plain loops, the ground truth every SIMD variant is tested against.
#include "index/kernels/internal/scalar_inl.h"

namespace strata::kernels::internal {
namespace {

float L2F(const void* a, const void* b, size_t d) {
  return L2F32Scalar(static_cast<const float*>(a), static_cast<const float*>(b), d);
}
float IPF(const void* a, const void* b, size_t d) {
  return -DotF32Scalar(static_cast<const float*>(a), static_cast<const float*>(b), d);
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

float L2H(const void* a, const void* b, size_t d) {
  return L2F16Scalar(static_cast<const float*>(a), static_cast<const uint16_t*>(b), d);
}
float IPH(const void* a, const void* b, size_t d) {
  return -DotF16Scalar(static_cast<const float*>(a), static_cast<const uint16_t*>(b), d);
}

constexpr KernelTable kTable =
    MakeTable<L2F, IPF, L2U, IPU, L2I, IPI, L2H, IPH>(SimdLevel::kScalar);

}  // namespace

const KernelTable* ScalarTable() { return &kTable; }

}  // namespace strata::kernels::internal
