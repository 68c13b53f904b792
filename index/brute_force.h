// Exact k-nearest-neighbour search by scanning every vector: ground truth for tests, the generator
// and benchmarks. Multi-threaded (OpenMP over query blocks), cache-blocked over the base.
#ifndef STRATA_INDEX_BRUTE_FORCE_H_
#define STRATA_INDEX_BRUTE_FORCE_H_

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "index/types.h"
#include "storage/vector_file.h"

namespace strata {

// The k nearest base vectors of every query, nearest first, with distances in the kernels'
// convention (squared L2 or -dot; cosine normalises both sides first). Ties are broken by id.
// InvalidArgument when types or dimensions differ, or k is 0 or exceeds the base size.
// `progress(done, total)` (optional) reports queries finished.
[[nodiscard]] absl::StatusOr<GroundTruth> ExactKnn(
    const VectorSet& base, const VectorSet& queries, Metric metric, uint32_t k, int threads = 0,
    const std::function<void(uint64_t, uint64_t)>& progress = nullptr);

}  // namespace strata

#endif  // STRATA_INDEX_BRUTE_FORCE_H_
