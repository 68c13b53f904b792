// Learns a collection's default dense weight for hybrid search from labelled questions: the
// weight the fusion (index/fusion.h, relative score) should give the dense side on *this*
// collection's text, instead of the one default measured on other corpora.
//
// Every weight of a fixed grid (0, 0.1, ..., 1) is tried on every question: the hybrid candidates
// of a question do not depend on the weight, so each question is searched once and fused at each
// weight. The weight with the best MRR@10 wins (ties: the one nearest kDefaultDenseWeight) - if
// it beats the default weight by more than two standard errors of the per-question difference;
// otherwise the default stays (a sample of a few hundred questions cannot tell 0.4 from 0.5).
// The questions should be a sample of the questions the collection will be asked: a weight is
// only as good as the sample it was learned on.
//
// Thread-safe (reads the collection only).
#ifndef STRATA_INDEX_HYBRID_TUNER_H_
#define STRATA_INDEX_HYBRID_TUNER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "index/collection.h"

namespace strata {

// Relevant ids one labelled question may name at most (TuneHybrid).
inline constexpr int kMaxRelevantIds = 1024;

struct LabelledQuestion {
  std::string text;
  std::vector<uint8_t> query;              // its embedding, in the collection's element type
  absl::flat_hash_set<uint64_t> relevant;  // ids of the points that answer it (at least one)
};

struct WeightScore {
  double weight = 0;
  double mrr_at_10 = 0;    // mean of 1 / rank of the first relevant point in the top 10 (0 if none)
  double recall_at_1 = 0;  // share of questions with a relevant point first
  double recall_at_10 = 0;  // ... in the top 10
};

struct HybridTuning {
  double weight = 0;               // the chosen one
  double best_weight = 0;          // the best MRR@10 of the table (chosen if it clears the margin)
  std::vector<WeightScore> table;  // every weight tried, ascending
};

// InvalidArgument for no question or one without a relevant id; the collection's errors (no
// lexical index, a damaged index, a query of the wrong size) as SearchText gives them, naming the
// question; Cancelled as soon as `cancelled` (optional) says so.
[[nodiscard]] absl::StatusOr<HybridTuning> TuneHybridWeight(
    const Collection& collection, absl::Span<const LabelledQuestion> questions,
    const SearchParams& params = {}, const std::function<bool()>& cancelled = nullptr);

}  // namespace strata

#endif  // STRATA_INDEX_HYBRID_TUNER_H_
