// How far apart a built index's heads lie: the median, over a sample of heads, of the Euclidean
// distance from a head to its nearest other head. Posting maintenance measures "far from every
// head" against it (a vector written where no head is near gets one: "Seeding" in
// index/collection.h). Private to index/.
#ifndef STRATA_INDEX_INTERNAL_HEAD_SPACING_H_
#define STRATA_INDEX_INTERNAL_HEAD_SPACING_H_

#include "absl/status/statusor.h"
#include "index/spann_index.h"

namespace strata::internal {

// The median nearest-head distance over at most `sample` heads spread evenly over the index's
// head numbers, as the head graph's walk finds the nearest (one walk each: ~0.1 s for 1,000 heads
// of a 1M-vector index on one core). 0 when the metric is inner product (no distance to bound
// with) or the index has fewer than two heads.
[[nodiscard]] absl::StatusOr<float> MedianHeadSpacing(const SpannIndex& index, uint32_t sample);

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_HEAD_SPACING_H_
