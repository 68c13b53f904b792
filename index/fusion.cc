#include "index/fusion.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace strata {

absl::Status CheckFusionParams(const FusionParams& params) {
  if (!(params.dense_weight >= 0 && params.dense_weight <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense_weight must be in [0, 1], got ", params.dense_weight));
  }
  return absl::OkStatus();
}

std::vector<FusedHit> Fuse(const std::vector<FusionCandidate>& candidates,
                           const FusionParams& params, uint32_t k) {
  std::vector<FusedHit> out;
  out.reserve(candidates.size());
  const double w = params.dense_weight;
  if (params.method == FusionMethod::kReciprocalRank) {
    for (const FusionCandidate& c : candidates) {
      double s = 0;
      if (c.dense_rank > 0) s += 2 * w / (kRrfK + c.dense_rank);
      if (c.lexical_rank > 0) s += 2 * (1 - w) / (kRrfK + c.lexical_rank);
      out.push_back({c, s});
    }
  } else {
    double d_lo = std::numeric_limits<double>::infinity(), d_hi = -d_lo;
    double l_lo = d_lo, l_hi = -d_lo;
    for (const FusionCandidate& c : candidates) {
      d_lo = std::min<double>(d_lo, c.dense_distance);
      d_hi = std::max<double>(d_hi, c.dense_distance);
      l_lo = std::min(l_lo, c.lexical_score);
      l_hi = std::max(l_hi, c.lexical_score);
    }
    for (const FusionCandidate& c : candidates) {
      const double dense = d_hi > d_lo ? (d_hi - c.dense_distance) / (d_hi - d_lo) : 1.0;
      const double lexical = l_hi > l_lo  ? (c.lexical_score - l_lo) / (l_hi - l_lo)
                             : l_hi > 0.0 ? 1.0
                                          : 0.0;
      out.push_back({c, w * dense + (1 - w) * lexical});
    }
  }
  const auto better = [](const FusedHit& a, const FusedHit& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.candidate.dense_distance != b.candidate.dense_distance) {
      return a.candidate.dense_distance < b.candidate.dense_distance;
    }
    if (a.candidate.lexical_score != b.candidate.lexical_score) {
      return a.candidate.lexical_score > b.candidate.lexical_score;
    }
    return a.candidate.id < b.candidate.id;
  };
  const size_t keep = std::min<size_t>(k, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<ptrdiff_t>(keep), out.end(), better);
  out.resize(keep);
  return out;
}

}  // namespace strata
