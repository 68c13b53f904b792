// How far apart a built index's heads lie: the median, over a sample of heads, of the Euclidean
// distance from a head to its nearest other head. Posting maintenance measures "far from every
// head" against it (a vector written where no head is near gets one: "Seeding" in
// index/collection.h). Private to index/.
#ifndef STRATA_INDEX_INTERNAL_HEAD_SPACING_H_
#define STRATA_INDEX_INTERNAL_HEAD_SPACING_H_

#include "absl/status/statusor.h"
#include "index/internal/head_graph.h"
#include "index/spann_index.h"

namespace strata::internal {

// A vector written after the build is far from every head past this many times the median
// spacing: posting maintenance gives it a head ("Seeding"). Measured on 200K SIFT-like vectors
// (bench/RESULTS.md, "Seeding"): a new vector of the build's own distribution lies 1.04x the
// median spacing from its nearest head at the median, 1.34x at the 99th percentile and 1.48x at
// the 99.9th; one of the drifted distribution 1.36x at the 10th percentile and 1.56x at the
// median.
inline constexpr float kFarSpacings = 1.5f;
// A vector the build assigns is an outlier past this many: it becomes a head of its own, which
// every walk measures (HeadGraph::AppendIsolated). Further out than the writes' threshold, so
// that the build's own distribution (1.48x at the 99.9th percentile) never gets there: the all-97s
// uint8 vector a stranger searched for among 20K SIFT-like ones lies 2.7-2.9x out (the all-zero
// one, 1.6x, is found by walks).
inline constexpr float kOutlierSpacings = 2.0f;
// Heads sampled to measure the spacing.
inline constexpr uint32_t kSpacingSample = 1000;

// The median nearest-head distance over at most `sample` heads spread evenly over the index's
// head numbers, as the head graph's walk finds the nearest (one walk each: ~0.1 s for 1,000 heads
// of a 1M-vector index on one core). 0 when the metric is inner product (no distance to bound
// with) or the index has fewer than two heads.
[[nodiscard]] absl::StatusOr<float> MedianHeadSpacing(const SpannIndex& index, uint32_t sample);
// The same over a head graph whose distances are `metric`'s (the index's, before cosine became
// inner product on normalised rows).
[[nodiscard]] float MedianHeadSpacing(const HeadGraph& graph, Metric metric, uint32_t sample);

}  // namespace strata::internal

#endif  // STRATA_INDEX_INTERNAL_HEAD_SPACING_H_
