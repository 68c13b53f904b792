#include "index/hybrid_tuner.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "index/fusion.h"
#include "storage/status_macros.h"

namespace strata {

absl::StatusOr<HybridTuning> TuneHybridWeight(const Collection& collection,
                                              absl::Span<const LabelledQuestion> questions,
                                              const SearchParams& params) {
  if (questions.empty()) return absl::InvalidArgumentError("no labelled questions to tune on");
  for (size_t i = 0; i < questions.size(); ++i) {
    if (questions[i].relevant.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("question ", i, " names no relevant point"));
    }
  }
  constexpr int kSteps = 10;  // weights 0, 0.1, ..., 1
  constexpr uint32_t kTop = 10;
  const CollectionConfig config = collection.config();
  HybridTuning out;
  for (int s = 0; s <= kSteps; ++s) out.table.push_back({static_cast<double>(s) / kSteps});
  std::vector<FusionCandidate> candidates;
  for (const LabelledQuestion& q : questions) {
    TextSearch search;
    search.mode = SearchMode::kHybrid;
    search.text = q.text;
    search.query = VectorView{config.type, q.query};
    RETURN_IF_ERROR(collection.HybridCandidates(search, kTop, params, &candidates));
    for (WeightScore& w : out.table) {
      const std::vector<FusedHit> hits =
          Fuse(candidates, {FusionMethod::kRelativeScore, w.weight}, kTop);
      for (size_t r = 0; r < hits.size(); ++r) {
        if (!q.relevant.contains(hits[r].candidate.id)) continue;
        w.mrr_at_10 += 1.0 / static_cast<double>(r + 1);
        w.recall_at_1 += r == 0;
        w.recall_at_10 += 1;
        break;
      }
    }
  }
  const auto n = static_cast<double>(questions.size());
  const WeightScore* best = nullptr;
  for (WeightScore& w : out.table) {
    w.mrr_at_10 /= n;
    w.recall_at_1 /= n;
    w.recall_at_10 /= n;
    if (best == nullptr || w.mrr_at_10 > best->mrr_at_10 ||
        (w.mrr_at_10 == best->mrr_at_10 &&
         std::abs(w.weight - kDefaultDenseWeight) < std::abs(best->weight - kDefaultDenseWeight))) {
      best = &w;
    }
  }
  out.weight = best->weight;
  return out;
}

}  // namespace strata
