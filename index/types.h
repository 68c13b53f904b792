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

// How vectors are stored in posting entries on disk. kNative keeps the vectors' own type, so
// distances are exact. kFloat16 (float32 vectors only) stores them as IEEE half floats: entries
// are half the size, so a query reads half the pages, and distances are computed against the
// rounded vectors (relative error ~1e-3; values must lie within +-65504). Persisted by name.
enum class PostingEncoding : uint32_t { kNative = 0, kFloat16 = 1 };

[[nodiscard]] const char* PostingEncodingName(PostingEncoding e);
// Accepts "native", "float16"/"f16"/"fp16".
[[nodiscard]] absl::StatusOr<PostingEncoding> ParsePostingEncoding(absl::string_view s);

// Internal vector id: position in the build input (u32: 4.29 billion vectors per index).
using VectorId = uint32_t;

}  // namespace strata

#endif  // STRATA_INDEX_TYPES_H_
