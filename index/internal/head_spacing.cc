#include "index/internal/head_spacing.h"

#include <algorithm>
#include <vector>

#include "index/kernels/distance.h"
#include "storage/status_macros.h"

namespace strata::internal {

absl::StatusOr<float> MedianHeadSpacing(const SpannIndex& index, uint32_t sample) {
  const uint64_t heads = index.num_heads();
  if (index.metric() == Metric::kInnerProduct || heads < 2 || sample == 0) return 0.0f;
  const uint64_t step = (heads + sample - 1) / sample;  // (at most `sample` heads)
  std::vector<float> spacing;
  std::vector<HeadHit> hits;
  for (uint64_t h = 0; h < heads; h += step) {
    RETURN_IF_ERROR(
        index.NearestHeads(index.head_vector(static_cast<uint32_t>(h)), 2, nullptr, &hits));
    // The nearest other head (a head equal to h, found first or second, counts at 0).
    for (const HeadHit& hit : hits) {
      if (hit.second != h) {
        spacing.push_back(kernels::EuclideanOf(index.metric(), hit.first));
        break;
      }
    }
  }
  if (spacing.empty()) return 0.0f;
  std::nth_element(spacing.begin(), spacing.begin() + spacing.size() / 2, spacing.end());
  return spacing[spacing.size() / 2];
}

}  // namespace strata::internal
