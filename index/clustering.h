// Balanced hierarchical k-means: SPANN's way of choosing heads. The points are split recursively,
// k = 32 ways per level, with a size penalty lambda * |cluster| added to each assignment so
// clusters stay balanced (plain k-means on skewed data leaves a few huge clusters, which become
// posting lists far over their length limit). Recursion stops at clusters of about `leaf_size`
// points; each leaf contributes one head: its member nearest to the leaf's centroid.
#ifndef STRATA_INDEX_CLUSTERING_H_
#define STRATA_INDEX_CLUSTERING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "index/types.h"

namespace strata {

struct ClusteringOptions {
  uint32_t branching = 32;           // k per level
  double leaf_size = 10.0;           // target points per leaf (1 / head share)
  uint32_t iterations = 8;           // Lloyd iterations per node, on a sample
  uint32_t sample_per_cluster = 64;  // training sample = k * this (all points if fewer)
  double balance = 1.0;  // beta in lambda = beta * mean_assign_dist / (n / k); 0 = plain k-means
  uint64_t seed = 42;
  int threads = 0;  // 0 = all cores
};

struct ClusteringResult {
  std::vector<VectorId> heads;       // one point id per leaf (the member nearest its centroid)
  std::vector<uint32_t> leaf_sizes;  // points per leaf, same order as heads
  uint32_t depth = 0;                // levels of the tree
};

// Clusters the n points of `data` (n * d float32, row-major; for integer data pass a float copy)
// under squared L2 (cosine/IP data is clustered on its normalised vectors, as SPTAG does).
// InvalidArgument for n == 0, d == 0 or leaf_size < 1. Deterministic for a given seed and threads.
[[nodiscard]] absl::StatusOr<ClusteringResult> BalancedHierarchicalClustering(
    const float* data, uint64_t n, uint32_t d, const ClusteringOptions& options);

// One level: k balanced clusters of the points `ids` (indices into data). Fills `assign` (one
// cluster index per id, in ids' order) and `centroids` (k * d). Exposed for tests.
void BalancedKMeans(const float* data, uint32_t d, const std::vector<VectorId>& ids, uint32_t k,
                    const ClusteringOptions& options, uint64_t seed, std::vector<uint32_t>* assign,
                    std::vector<float>* centroids);

}  // namespace strata

#endif  // STRATA_INDEX_CLUSTERING_H_
