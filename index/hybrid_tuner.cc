#include "index/hybrid_tuner.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "index/fusion.h"
#include "storage/status_macros.h"

namespace strata {

absl::StatusOr<HybridTuning> TuneHybridWeight(const Collection& collection,
                                              absl::Span<const LabelledQuestion> questions,
                                              const SearchParams& params,
                                              const std::function<bool()>& cancelled) {
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
  // rr[w][q]: the reciprocal rank of question q's first relevant point at weight w (0 if none).
  std::vector<std::vector<double>> rr(out.table.size(), std::vector<double>(questions.size()));
  std::vector<FusionCandidate> candidates;
  for (size_t qi = 0; qi < questions.size(); ++qi) {
    if (cancelled && cancelled()) return absl::CancelledError("the client went away");
    const LabelledQuestion& q = questions[qi];
    TextSearch search;
    search.mode = SearchMode::kHybrid;
    search.text = q.text;
    search.query = VectorView{config.type, q.query};
    absl::Status s = collection.HybridCandidates(search, kTop, params, &candidates);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("question ", qi, ": ", s.message()));
    for (size_t wi = 0; wi < out.table.size(); ++wi) {
      WeightScore& w = out.table[wi];
      const std::vector<FusedHit> hits =
          Fuse(candidates, {FusionMethod::kRelativeScore, w.weight}, kTop);
      for (size_t r = 0; r < hits.size(); ++r) {
        if (!q.relevant.contains(hits[r].candidate.id)) continue;
        rr[wi][qi] = 1.0 / static_cast<double>(r + 1);
        w.recall_at_1 += r == 0;
        w.recall_at_10 += 1;
        break;
      }
    }
  }
  const auto n = static_cast<double>(questions.size());
  size_t best = 0, fallback = 0;
  for (size_t wi = 0; wi < out.table.size(); ++wi) {
    WeightScore& w = out.table[wi];
    for (double x : rr[wi]) w.mrr_at_10 += x;
    w.mrr_at_10 /= n;
    w.recall_at_1 /= n;
    w.recall_at_10 /= n;
    const auto nearer = [&](size_t a, size_t b) {
      return std::abs(out.table[a].weight - kDefaultDenseWeight) <
             std::abs(out.table[b].weight - kDefaultDenseWeight);
    };
    if (w.mrr_at_10 > out.table[best].mrr_at_10 ||
        (w.mrr_at_10 == out.table[best].mrr_at_10 && nearer(wi, best))) {
      best = wi;
    }
    if (nearer(wi, fallback)) fallback = wi;
  }
  out.best_weight = out.table[best].weight;
  // The best against the default, question by question: keep the default unless the gain is
  // more than two standard errors of the mean paired difference.
  double sum = 0, sum_sq = 0;
  for (size_t qi = 0; qi < questions.size(); ++qi) {
    const double d = rr[best][qi] - rr[fallback][qi];
    sum += d;
    sum_sq += d * d;
  }
  const double mean = sum / n;
  const double var = n > 1 ? std::max(0.0, (sum_sq - n * mean * mean) / (n - 1)) : 0.0;
  const bool clears = mean > 2.0 * std::sqrt(var / n);
  out.weight = clears ? out.table[best].weight : out.table[fallback].weight;
  return out;
}

}  // namespace strata
