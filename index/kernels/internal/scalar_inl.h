// Scalar reference loops, shared by every variant for its tail elements. Private to index/kernels.
#ifndef STRATA_INDEX_KERNELS_INTERNAL_SCALAR_INL_H_
#define STRATA_INDEX_KERNELS_INTERNAL_SCALAR_INL_H_

#include <cstddef>
#include <cstdint>

#include "index/kernels/distance.h"
#include "storage/half.h"

namespace strata::kernels::internal {
// Everything here is private to each file that includes it: every variant's file is compiled with
// its own instruction set, and a definition with external linkage that the compiler leaves out of
// line (unoptimised or instrumented builds) would be one weak symbol for the linker to pick from
// any of them - an AVX-512 copy for every caller, on any CPU. (Checked by the test
// IsaKernels.DefineNoWeakFunctions, tests/CMakeLists.txt.)
namespace {

// Float kernels take the query as float32 and the stored vector as float32 or float16 (`B`).
inline float ToFloat(float x) { return x; }
inline float ToFloat(uint16_t h) { return HalfToFloat(h); }

template <typename B>
inline float L2FloatScalar(const float* a, const B* b, size_t d) {
  float s = 0;
  for (size_t i = 0; i < d; ++i) {
    float t = a[i] - ToFloat(b[i]);
    s += t * t;
  }
  return s;
}
template <typename B>
inline float DotFloatScalar(const float* a, const B* b, size_t d) {
  float s = 0;
  for (size_t i = 0; i < d; ++i) s += a[i] * ToFloat(b[i]);
  return s;
}
template <typename T>
inline int32_t L2IntScalar(const T* a, const T* b, size_t d) {
  int32_t s = 0;
  for (size_t i = 0; i < d; ++i) {
    int32_t t = int32_t{a[i]} - int32_t{b[i]};
    s += t * t;
  }
  return s;
}
template <typename T>
inline int32_t DotIntScalar(const T* a, const T* b, size_t d) {
  int32_t s = 0;
  for (size_t i = 0; i < d; ++i) s += int32_t{a[i]} * int32_t{b[i]};
  return s;
}

inline void ToHalfScalar(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = FloatToHalf(in[i]);
}

// Builds a batch function from a one-vector kernel (inlined into the loop).
template <float (*Fn)(const void*, const void*, size_t)>
void BatchOf(const void* q, const void* base, size_t stride, size_t n, size_t d, float* out) {
  const auto* p = static_cast<const uint8_t*>(base);
  for (size_t i = 0; i < n; ++i) out[i] = Fn(q, p + i * stride, d);
}

// Fills a KernelTable from eight one-vector kernels (the last two: float32 query, float16 vector)
// and a float16 conversion.
template <
    float (*L2F)(const void*, const void*, size_t), float (*IPF)(const void*, const void*, size_t),
    float (*L2U)(const void*, const void*, size_t), float (*IPU)(const void*, const void*, size_t),
    float (*L2I)(const void*, const void*, size_t), float (*IPI)(const void*, const void*, size_t),
    float (*L2H)(const void*, const void*, size_t), float (*IPH)(const void*, const void*, size_t),
    void (*TOH)(const float*, uint16_t*, size_t)>
constexpr KernelTable MakeTable(SimdLevel level) {
  return KernelTable{
      level,
      {{L2F, IPF}, {L2U, IPU}, {L2I, IPI}},
      {{BatchOf<L2F>, BatchOf<IPF>}, {BatchOf<L2U>, BatchOf<IPU>}, {BatchOf<L2I>, BatchOf<IPI>}},
      {L2H, IPH},
      TOH};
}

}  // namespace
}  // namespace strata::kernels::internal

#endif  // STRATA_INDEX_KERNELS_INTERNAL_SCALAR_INL_H_
