// Difficulty figures of a vector set, to compare synthetic data with real data:
//   local intrinsic dimensionality (LID): the MLE of Levina & Bickel / Amsaleg et al. over the k
//     nearest neighbours, -1 / mean_i log(r_i / r_k) for i < k (Euclidean distances);
//   relative contrast (RC): mean distance to the base / distance to the nearest neighbour.
// Both are medians over the queries. Higher LID and lower RC mean harder search.
#ifndef STRATA_TOOLS_DATA_STATS_H_
#define STRATA_TOOLS_DATA_STATS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "storage/vector_file.h"

namespace strata {

struct Difficulty {
  double lid_median = 0;
  double rc_median = 0;
  uint64_t base = 0, queries = 0;
};

// Uses the first min(set.n, sample) rows: the last `queries` of them query the others (as the real
// reference figures were taken: 4,800 base / 200 queries of a 5,000 sample). InvalidArgument when
// the sample is too small for k.
[[nodiscard]] absl::StatusOr<Difficulty> MeasureDifficulty(const VectorSet& set,
                                                           uint64_t sample = 5000,
                                                           uint64_t queries = 200, uint32_t k = 20);

}  // namespace strata

#endif  // STRATA_TOOLS_DATA_STATS_H_
