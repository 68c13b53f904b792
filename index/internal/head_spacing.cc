#include "index/internal/head_spacing.h"

#include <algorithm>
#include <vector>

#include "index/kernels/distance.h"
#include "storage/status_macros.h"

namespace strata::internal {
namespace {
// The median of the nearest other head's distance (Euclidean), over at most `sample` heads spread
// evenly; `nearest2(h, &hits)` gives head h's two nearest heads.
template <typename Nearest2>
absl::StatusOr<float> MedianSpacing(uint64_t heads, Metric metric, uint32_t sample,
                                    Nearest2 nearest2) {
  if (metric == Metric::kInnerProduct || heads < 2 || sample == 0) return 0.0f;
  const uint64_t step = (heads + sample - 1) / sample;  // (at most `sample` heads)
  std::vector<float> spacing;
  std::vector<HeadHit> hits;
  for (uint64_t h = 0; h < heads; h += step) {
    RETURN_IF_ERROR(nearest2(static_cast<uint32_t>(h), &hits));
    // The nearest other head (a head equal to h, found first or second, counts at 0).
    for (const HeadHit& hit : hits) {
      if (hit.second != h) {
        spacing.push_back(kernels::EuclideanOf(metric, hit.first));
        break;
      }
    }
  }
  if (spacing.empty()) return 0.0f;
  std::nth_element(spacing.begin(), spacing.begin() + spacing.size() / 2, spacing.end());
  return spacing[spacing.size() / 2];
}
}  // namespace

absl::StatusOr<float> MedianHeadSpacing(const SpannIndex& index, uint32_t sample) {
  return MedianSpacing(index.num_heads(), index.metric(), sample,
                       [&](uint32_t h, std::vector<HeadHit>* hits) {
                         return index.NearestHeads(index.head_vector(h), 2, nullptr, hits);
                       });
}

float MedianHeadSpacing(const HeadGraph& graph, Metric metric, uint32_t sample) {
  HeadSearchScratch scratch;
  absl::StatusOr<float> median =
      MedianSpacing(graph.size(), metric, sample, [&](uint32_t h, std::vector<HeadHit>* hits) {
        graph.Search(graph.vector(h), 2, 64, &scratch, hits);
        return absl::OkStatus();
      });
  return median.ok() ? *median : 0.0f;  // (the walk cannot fail)
}

}  // namespace strata::internal
