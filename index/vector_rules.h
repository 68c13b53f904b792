// What makes a vector valid for an index or a collection, and how cosine vectors are normalised.
// One home for both rules: builds, writes and searches all call these.
//
// The contract: every distance Strata computes is a finite float32, so "nearest first" is a total
// order. Hence:
// - float32 values must be finite, and a vector's L2 norm at most kMaxVectorNorm (1e18). Then a
//   squared L2 distance between two vectors is at most (2e18)^2 = 4e36 and an inner product at
//   most 1e36 in magnitude, far inside float32's 3.4e38 - in every kernel and at every step of its
//   sum (partial sums of squares never exceed the whole; partial dot products are bounded by
//   Cauchy-Schwarz). Cluster centroids are averages, so they obey the same bound.
// - Under cosine a vector must not be all zeros (it has no direction). The norm limit does not
//   apply: cosine vectors are normalised in double precision before any distance is taken.
// - uint8 and int8 vectors accept every value: the integer kernels are exact in 32 bits up to
//   kMaxDimension elements.
#ifndef STRATA_INDEX_VECTOR_RULES_H_
#define STRATA_INDEX_VECTOR_RULES_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "index/types.h"
#include "storage/vector_types.h"

namespace strata {

// The largest dimension of an index or a collection.
inline constexpr uint32_t kMaxDimension = 32768;
// The largest L2 norm of a float32 vector under L2 or inner product (see above).
inline constexpr double kMaxVectorNorm = 1e18;

// OK when the `dim` elements of `type` at `v` obey the rules above for `metric`; otherwise
// InvalidArgument saying which rule fails ("vector has a non-finite value at dimension 3"). The
// caller checks the size of `v` and may prefix the message with the row or query it names.
[[nodiscard]] absl::Status CheckVectorValues(ElementType type, Metric metric, uint32_t dim,
                                             const uint8_t* v);
// The same, with the message prefixed by what the vector is ("vector 17: vector has a non-finite
// value at dimension 3").
[[nodiscard]] absl::Status CheckVectorValues(ElementType type, Metric metric, uint32_t dim,
                                             const uint8_t* v, absl::string_view what);

// Scales the `d` floats at `v` to unit L2 norm, computing the norm and the quotients in double
// precision (so neither a huge nor a subnormal vector overflows). A zero vector stays zero; the
// callers refuse those first.
void NormalizeInPlace(float* v, uint32_t d);

}  // namespace strata

#endif  // STRATA_INDEX_VECTOR_RULES_H_
