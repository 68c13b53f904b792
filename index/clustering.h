// Balanced hierarchical k-means: SPANN's way of choosing heads. The points are split recursively,
// k = 32 ways per level, with a size penalty lambda * |cluster| added to each assignment so
// clusters stay balanced (plain k-means on skewed data leaves a few huge clusters, which become
// posting lists far over their length limit). Recursion stops at clusters of about `leaf_size`
// points; each leaf contributes one head: its member nearest to the leaf's centroid.
#ifndef STRATA_INDEX_CLUSTERING_H_
#define STRATA_INDEX_CLUSTERING_H_

#include <cstdint>
#include <functional>
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
  // Checked between nodes, on any thread (may be null): once true (it must stay true), the
  // clustering stops and returns Cancelled.
  std::function<bool()> cancelled;
};

// n rows of d elements of one type (float32, uint8 or int8), read as float32 - normalised to unit
// length when `normalise` (cosine data). Rows are converted one at a time as they are read, so
// nothing needs a float copy of the whole set (for 1B uint8 vectors of d = 128 that copy would
// be 512 GB). Float32 rows that need no normalising are read in place.
class FloatRows {
 public:
  FloatRows(const float* data, uint32_t d)
      : data_(reinterpret_cast<const uint8_t*>(data)), type_(ElementType::kFloat32), d_(d) {}
  FloatRows(const uint8_t* data, ElementType type, uint32_t d, bool normalise)
      : data_(data), type_(type), d_(d), normalise_(normalise) {}

  [[nodiscard]] uint32_t dim() const { return d_; }
  // Row i as floats: a pointer into the data (float32, not normalised), else into `scratch`
  // (dim() floats), filled.
  const float* Row(uint64_t i, float* scratch) const;
  // One row of `type` to float32, normalised to unit length when asked (a zero row stays zero).
  static void Convert(ElementType type, const uint8_t* src, uint32_t d, bool normalise, float* out);

 private:
  const uint8_t* data_;
  ElementType type_;
  uint32_t d_;
  bool normalise_ = false;
};

struct ClusteringResult {
  std::vector<VectorId> heads;       // one point id per leaf (the member nearest its centroid)
  std::vector<uint32_t> leaf_sizes;  // points per leaf, same order as heads
  uint32_t depth = 0;                // levels of the tree
};

// Clusters the n points of `rows` under squared L2 (cosine/IP data is clustered on its normalised
// vectors, as SPTAG does). InvalidArgument for n == 0, d == 0 or leaf_size < 1. Deterministic for
// a given seed and threads.
[[nodiscard]] absl::StatusOr<ClusteringResult> BalancedHierarchicalClustering(
    const FloatRows& rows, uint64_t n, const ClusteringOptions& options);
// The same over n * d float32, row-major.
[[nodiscard]] absl::StatusOr<ClusteringResult> BalancedHierarchicalClustering(
    const float* data, uint64_t n, uint32_t d, const ClusteringOptions& options);

// One level: k balanced clusters of the points `ids` (indices into rows). Fills `assign` (one
// cluster index per id, in ids' order) and `centroids` (k * d). Exposed for tests.
void BalancedKMeans(const FloatRows& rows, const std::vector<VectorId>& ids, uint32_t k,
                    const ClusteringOptions& options, uint64_t seed, std::vector<uint32_t>* assign,
                    std::vector<float>* centroids);

}  // namespace strata

#endif  // STRATA_INDEX_CLUSTERING_H_
