// SPFresh's local split of an oversized posting (DESIGN.md, "SPFresh"): 2-means over the
// posting's live vectors, each half's head being its member nearest the half's centroid (a real
// point, as the build's heads are: clustering.h). Private to index/.
#ifndef STRATA_INDEX_INTERNAL_POSTING_SPLIT_H_
#define STRATA_INDEX_INTERNAL_POSTING_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/types.h"

namespace strata::internal {

struct TwoWaySplit {
  size_t head[2] = {0, 0};    // the rows chosen as the halves' heads
  std::vector<uint8_t> side;  // per row: 0 or 1
};

// Splits `n` rows (posting form: `type`, `dim`, normalised for cosine) in two by Lloyd's
// iterations from a seeded start (a row, then the row farthest from it). A half smaller than
// `min_side` (<= n / 2) is filled up with the rows of the other half nearest the boundary (by
// their difference of distances to the two centroids), so that no split leaves a posting small
// enough to merge away at once; rows all alike are split by position. False for fewer than two
// rows.
[[nodiscard]] bool SplitInTwo(ElementType type, uint32_t dim, const uint8_t* rows, size_t n,
                              uint64_t seed, size_t min_side, TwoWaySplit* out);

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_POSTING_SPLIT_H_
