// Vectors between the API (strata.v1.Vector: float `values` or little-endian `raw` bytes) and the
// bytes a collection stores in its element type.
#ifndef STRATA_SERVICE_VECTOR_CONVERT_H_
#define STRATA_SERVICE_VECTOR_CONVERT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "proto/strata.pb.h"
#include "storage/vector_types.h"

namespace strata {

// The vector's bytes in `type`, or InvalidArgument saying what is wrong with its shape or (for
// integer types) its values. NaN/Inf and norms are left to the collection (index/vector_rules.h).
[[nodiscard]] absl::Status VectorBytes(const v1::Vector& v, ElementType type, uint32_t dim,
                                       std::vector<uint8_t>* out);
// `bytes` (a whole number of elements of `type`) as float `values` of `v`.
void BytesToVector(absl::Span<const uint8_t> bytes, ElementType type, v1::Vector* v);

}  // namespace strata

#endif  // STRATA_SERVICE_VECTOR_CONVERT_H_
