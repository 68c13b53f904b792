// Distance kernels: squared L2 and (negated) inner product for float32, uint8 and int8 vectors,
// and for a float32 query against a float16 vector (float16 posting entries, spann_index.h).
//
// Convention: every kernel returns a *distance*, smaller = closer. L2 kernels return the squared
// Euclidean distance; inner-product kernels return -dot(a, b). Integer kernels accumulate exactly
// in int32 (valid for dimension <= 65,536) and convert once.
//
// Variants: a scalar reference, AVX2 and AVX-512 (F+BW), each in its own translation unit compiled
// with its own flags; Best() takes the project's one SIMD level (storage/cpu_features.h:
// STRATA_SIMD=scalar|avx2|avx512 forces it, for these kernels and the engine's alike).
#ifndef STRATA_INDEX_KERNELS_DISTANCE_H_
#define STRATA_INDEX_KERNELS_DISTANCE_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "index/types.h"
#include "storage/cpu_features.h"
#include "storage/vector_types.h"

namespace strata::kernels {

// The project's SIMD levels and their detection live in storage/cpu_features.h.
using ::strata::SimdLevel;
using ::strata::SimdLevelName;

// One vector against another, both of `d` elements of the type the function is for.
using DistanceFn = float (*)(const void* a, const void* b, size_t d);
// A query against n vectors laid out `stride` bytes apart starting at `base`; out has n floats.
using DistanceBatchFn = void (*)(const void* query, const void* base, size_t stride, size_t n,
                                 size_t d, float* out);
// float32 -> float16, rounded to nearest even: FloatToHalf's (storage/half.h) results, bit for
// bit, for every value but NaN (a NaN stays a NaN).
using ToHalfFn = void (*)(const float* in, uint16_t* out, size_t n);

// The kernels of one SIMD level. Index by [type][metric] with the helpers below.
struct KernelTable {
  SimdLevel level;
  DistanceFn one[3][2];  // [f32, u8, i8][l2, ip]
  DistanceBatchFn batch[3][2];
  DistanceFn f16[2];  // a float32 query (a) against a float16 vector (b): [l2, ip]
  ToHalfFn to_half;
};

// The table for `level`, or nullptr when this CPU (or this build) lacks it.
[[nodiscard]] const KernelTable* TableFor(SimdLevel level);
// The widest supported table (or the STRATA_SIMD override). Chosen once; thread-safe.
[[nodiscard]] const KernelTable& Best();

// The kernel for a type and metric; kCosine uses the inner-product kernel (inputs are normalised).
[[nodiscard]] inline int TypeSlot(ElementType t) {
  return t == ElementType::kFloat32 ? 0 : (t == ElementType::kUint8 ? 1 : 2);
}
[[nodiscard]] inline int MetricSlot(Metric m) { return m == Metric::kL2 ? 0 : 1; }
[[nodiscard]] inline DistanceFn GetDistance(const KernelTable& t, ElementType e, Metric m) {
  return t.one[TypeSlot(e)][MetricSlot(m)];
}
// A float32 query against float16 vectors (kCosine: inner product, as above).
[[nodiscard]] inline DistanceFn GetFloat16Distance(const KernelTable& t, Metric m) {
  return t.f16[MetricSlot(m)];
}
[[nodiscard]] inline DistanceBatchFn GetBatch(const KernelTable& t, ElementType e, Metric m) {
  return t.batch[TypeSlot(e)][MetricSlot(m)];
}
// The Euclidean distance |a - b| that a kernel's distance `d` stands for under metric `m`, for
// bounds by the triangle inequality; -1 under kInnerProduct, which has none. (kCosine's inputs are
// unit vectors: |a - b|^2 = 2 + 2 d.)
[[nodiscard]] inline float EuclideanOf(Metric m, float d) {
  switch (m) {
    case Metric::kL2:
      return std::sqrt(std::max(d, 0.0f));
    case Metric::kCosine:
      return std::sqrt(std::max(2.0f + 2.0f * d, 0.0f));
    case Metric::kInnerProduct:
      break;
  }
  return -1;
}

}  // namespace strata::kernels

#endif  // STRATA_INDEX_KERNELS_DISTANCE_H_
