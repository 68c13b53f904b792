// Vocabulary of the index module: metrics and ids.
#ifndef STRATA_INDEX_TYPES_H_
#define STRATA_INDEX_TYPES_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/vector_types.h"

namespace strata {

// Values are persisted in manifests: never renumber. Cosine is inner product over vectors
// normalised at ingest (float32 only).
enum class Metric : uint32_t { kL2 = 1, kInnerProduct = 2, kCosine = 3 };

[[nodiscard]] const char* MetricName(Metric m);
// Accepts "l2", "ip"/"inner_product", "cosine".
[[nodiscard]] absl::StatusOr<Metric> ParseMetric(absl::string_view s);

// Internal vector id: position in the build input (u32: 4.29 billion vectors per index).
using VectorId = uint32_t;

}  // namespace strata

#endif  // STRATA_INDEX_TYPES_H_
