// Hybrid search's rule for merging a dense ranking and a lexical (BM25) ranking into one: the one
// home of the fusion methods, their defaults and the candidate depth.
//
// The dense side contributes its top kDenseDepth (or k, if larger) candidates, the lexical side
// its top kLexicalDepth (or k); the union is fused:
//  - kRelativeScore: each component is min-max normalised over the union (dense: nearest = 1,
//    farthest = 0; lexical: best BM25 = 1, lowest = 0; a component that is equal for every
//    candidate counts 1 when it carries evidence - any dense distance, a BM25 score above 0 - and
//    0 otherwise), and the fused score is w * dense + (1 - w) * lexical. The callers fill in the
//    component a candidate missed on the other side (its dense distance, its BM25 score),
//    so every candidate is scored on both.
//  - kReciprocalRank: sum over the sides of weight / (kRrfK + rank), rank 1-based within that
//    side's list; a side's weight is 2w (dense) or 2(1 - w) (lexical), so w = 0.5 is the
//    classic unweighted RRF. Candidates absent from a side's list get nothing from it.
// Ties are ordered by the nearer dense distance, then the higher BM25, then the smaller id, so the
// answer does not depend on the order of the candidates and a weight of 0 or 1 still ranks by
// the other side where its own has nothing to say. Inputs must be finite.
//
// The default weight, 0.5, is the best MRR@10 of a sweep on PostgreSQL's documentation (section
// titles as questions); reported on SQuAD v1.1, which did not choose it, relative-score fusion at
// 0.5 beats both sides and RRF at every k (bench/RESULTS.md, "Hybrid retrieval").
//
// Pure functions; thread-safe.
#ifndef STRATA_INDEX_FUSION_H_
#define STRATA_INDEX_FUSION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "index/types.h"

namespace strata {

enum class SearchMode { kDense, kLexical, kHybrid };
enum class FusionMethod { kRelativeScore, kReciprocalRank };

// Candidates each side contributes to a fusion (at least k). The lexical side's candidates that
// the dense side missed each cost a stored vector's read; below 50 of them recall moved by less
// than 0.001 on SQuAD and PostgreSQL's documentation (bench/RESULTS.md), so 50 it is.
inline constexpr uint32_t kDenseDepth = 100;
inline constexpr uint32_t kLexicalDepth = 50;
inline constexpr double kRrfK = 60;
// The most hits a lexical or hybrid search returns (it bounds each side's candidates).
inline constexpr uint32_t kMaxTextK = 1024;
inline constexpr double kDefaultDenseWeight = 0.5;

struct FusionParams {
  FusionMethod method = FusionMethod::kRelativeScore;
  double dense_weight = kDefaultDenseWeight;  // in [0, 1]: 1 = dense only, 0 = lexical only
};
// InvalidArgument naming the problem when the weight is not a number in [0, 1].
[[nodiscard]] absl::Status CheckFusionParams(const FusionParams& params);

struct FusionCandidate {
  uint64_t id = 0;
  float dense_distance = 0;  // lower is nearer
  double lexical_score = 0;  // BM25; higher is better, 0 = no term in common
  uint32_t dense_rank = 0;   // 1-based place in the dense list; 0 = not in it
  uint32_t lexical_rank = 0;
};

struct FusedHit {
  FusionCandidate candidate;
  double score = 0;  // higher is better
};

// The k best of `candidates` (ids distinct) by `params`, best first.
[[nodiscard]] std::vector<FusedHit> Fuse(const std::vector<FusionCandidate>& candidates,
                                         const FusionParams& params, uint32_t k);

}  // namespace strata

#endif  // STRATA_INDEX_FUSION_H_
